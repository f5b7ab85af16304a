//! [`BincodeCodec`]: bincode 2 through its serde support (std).

use alloc::vec::Vec;
use core::fmt;

mod capped;

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most bytes one decoded value (a header or an update) may take:
/// bincode refuses, before reading them, lengths that would go past it.
pub const BINCODE_VALUE_LIMIT: usize = 4096;

type Config = Configuration<LittleEndian, Varint, Limit<BINCODE_VALUE_LIMIT>>;

const CONFIG: Config = bincode::config::standard().with_limit::<BINCODE_VALUE_LIMIT>();

crate::serde_codec!(
    /// Encodes headers and updates with [bincode 2](https://docs.rs/bincode)
    /// (standard configuration: little endian, varint integers), for identities
    /// that are `Serialize + DeserializeOwned`. For users who already speak
    /// bincode; [`PostcardCodec`](crate::PostcardCodec) is the default.
    ///
    /// Every value is limited to [`BINCODE_VALUE_LIMIT`] bytes. Decoding never
    /// allocates from a length read off the wire: strings and byte buffers are
    /// read from the input before being copied, and sequences (a `Vec` in the
    /// identity) grow with the elements actually read, so hostile input
    /// allocates at most a small multiple of its own size. (Plain bincode would
    /// allocate a string's claimed length, up to the limit, and preallocate a
    /// sequence's, up to 1 MiB, before reading either.)
    ///
    /// ```
    /// use foca_codec::BincodeCodec;
    /// use foca_core::{Codec, GenerationalId, Member, State};
    ///
    /// let mut codec = BincodeCodec::<GenerationalId<u32>>::new();
    /// let member = Member::new(GenerationalId::new(7, 1), 3, State::Suspect);
    /// let mut bytes = Vec::new();
    /// codec.encode_member(&member, &mut bytes).unwrap();
    /// let mut input = &bytes[..];
    /// assert_eq!(codec.decode_member(&mut input).unwrap(), member);
    /// ```
    BincodeCodec,
    BincodeError,
    "A bincode codec for identities of type `T`."
);

/// Why bincode failed.
#[derive(Debug)]
pub enum BincodeError {
    /// Encoding failed.
    Encode(bincode::error::EncodeError),
    /// Decoding failed.
    Decode(bincode::error::DecodeError),
}

impl fmt::Display for BincodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BincodeError::Encode(e) => write!(f, "bincode encode: {e}"),
            BincodeError::Decode(e) => write!(f, "bincode decode: {e}"),
        }
    }
}

impl std::error::Error for BincodeError {}

fn encode<V: Serialize>(value: &V, out: &mut Vec<u8>) -> Result<(), BincodeError> {
    let start = out.len();
    bincode::serde::encode_into_std_write(value, out, CONFIG)
        .map(drop)
        .map_err(|e| {
            out.truncate(start);
            BincodeError::Encode(e)
        })
}

fn decode<V: DeserializeOwned>(input: &mut &[u8]) -> Result<V, BincodeError> {
    let (value, used) = bincode::serde::seed_decode_from_slice(capped::Seed::new(), input, CONFIG)
        .map_err(BincodeError::Decode)?;
    *input = input.get(used..).unwrap_or_default();
    Ok(value)
}
