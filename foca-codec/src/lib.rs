//! # foca-codec: wire formats for foca
//!
//! - `PostcardCodec` (feature `postcard`, no_std) and `BincodeCodec`
//!   (feature `bincode`, std): implementations of the core's
//!   [`Codec`](foca_core::Codec) for any serde identity.
//! - [`Envelope`]: what every driver wraps each datagram in: magic, version,
//!   cluster label, and either a CRC32C checksum or, with a `Keyring`
//!   (feature `encryption`, no_std), authenticated encryption with key ids and
//!   staged rotation.
//!
//! ```
//! # #[cfg(feature = "postcard")] {
//! use foca_codec::{Envelope, PostcardCodec};
//! use foca_core::{Config, Foca, GenerationalId};
//! use rand::{SeedableRng, rngs::Xoshiro128PlusPlus};
//!
//! let envelope = Envelope::insecure_plaintext(b"my-cluster");
//! let config = Config {
//!     // Leave room for the envelope in every datagram.
//!     max_packet_size: 1400 - envelope.overhead(),
//!     ..Config::new_lan(10)
//! };
//! let foca = Foca::new(
//!     GenerationalId::new(std::net::SocketAddr::from(([127, 0, 0, 1], 7000)), 1),
//!     config,
//!     Xoshiro128PlusPlus::seed_from_u64(1),
//!     PostcardCodec::new(),
//! )
//! .unwrap();
//! # let _ = foca; }
//! ```
//!
//! Features (none by default): `postcard`, `bincode` (implies `std`),
//! `encryption`, `std`. The crate is `no_std` without `bincode`/`std`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

/// Declares a serde codec type: a zero-sized struct generic over the
/// identity, with `new`, `Default`, `Clone`, `Debug`, and a `Codec` impl
/// that calls the invoking module's `encode` and `decode` functions (the
/// struct's docs come from the invocation).
#[cfg(any(feature = "postcard", feature = "bincode"))]
macro_rules! serde_codec {
    ($(#[$doc:meta])* $name:ident, $error:ty, $new_doc:literal) => {
        $(#[$doc])*
        pub struct $name<T> {
            _identity: core::marker::PhantomData<fn() -> T>,
        }

        impl<T> $name<T> {
            #[doc = $new_doc]
            pub const fn new() -> Self {
                Self {
                    _identity: core::marker::PhantomData,
                }
            }
        }

        impl<T> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                Self::new()
            }
        }

        impl<T> core::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(stringify!($name))
            }
        }

        impl<T> foca_core::Codec<T> for $name<T>
        where
            T: serde::Serialize + serde::de::DeserializeOwned,
        {
            type Error = $error;

            fn encode_header(
                &mut self,
                header: &foca_core::Header<T>,
                out: &mut alloc::vec::Vec<u8>,
            ) -> Result<(), Self::Error> {
                encode(header, out)
            }

            fn decode_header(&mut self, input: &mut &[u8]) -> Result<foca_core::Header<T>, Self::Error> {
                decode(input)
            }

            fn encode_member(
                &mut self,
                member: &foca_core::Member<T>,
                out: &mut alloc::vec::Vec<u8>,
            ) -> Result<(), Self::Error> {
                encode(member, out)
            }

            fn decode_member(&mut self, input: &mut &[u8]) -> Result<foca_core::Member<T>, Self::Error> {
                decode(input)
            }
        }
    };
}
#[cfg(any(feature = "postcard", feature = "bincode"))]
pub(crate) use serde_codec;

#[cfg(feature = "bincode")]
mod bincode;
pub mod envelope;
#[cfg(feature = "encryption")]
pub mod keyring;
#[cfg(feature = "postcard")]
mod postcard;

#[cfg(feature = "bincode")]
pub use crate::bincode::{BINCODE_VALUE_LIMIT, BincodeCodec, BincodeError};
#[cfg(feature = "postcard")]
pub use crate::postcard::{PostcardCodec, PostcardError};
pub use envelope::{
    CHECKSUM_LEN, DEFAULT_MAX_DATAGRAM, Envelope, HEADER_LEN, MAGIC, OpenError, Rejections,
    SealError, VERSION_MAJOR, VERSION_MINOR,
};
#[cfg(feature = "encryption")]
pub use keyring::{Cipher, Key, KeyId, Keyring, KeyringError};
