//! [`PostcardCodec`]: compact, no_std, the default wire format.

use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

crate::serde_codec!(
    /// Encodes headers and updates with [postcard](https://docs.rs/postcard)
    /// (varint integers, no field names): typically 10–20 bytes per update.
    ///
    /// Works for any identity that is `Serialize + DeserializeOwned`. Decoding
    /// never pre-allocates more than the input could hold (postcard ignores a
    /// sequence length larger than the bytes left), so hostile input cannot make
    /// it allocate more than a small multiple of its own size.
    ///
    /// ```
    /// use foca_codec::PostcardCodec;
    /// use foca_core::{Codec, GenerationalId, Member};
    ///
    /// let mut codec = PostcardCodec::<GenerationalId<u32>>::new();
    /// let member = Member::alive(GenerationalId::new(7, 1), 3);
    /// let mut bytes = Vec::new();
    /// codec.encode_member(&member, &mut bytes).unwrap();
    /// let mut input = &bytes[..];
    /// assert_eq!(codec.decode_member(&mut input).unwrap(), member);
    /// assert!(input.is_empty());
    /// ```
    PostcardCodec,
    PostcardError,
    "A postcard codec for identities of type `T`."
);

/// Why postcard failed: its own error, passed through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostcardError(pub postcard::Error);

impl fmt::Display for PostcardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postcard: {}", self.0)
    }
}

impl core::error::Error for PostcardError {}

/// Lets postcard append to a borrowed buffer. Postcard writes in pieces of
/// a few bytes (a varint, a tag): those are pushed byte by byte, which
/// costs less than a copy call each.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= 16 {
            self.0.reserve(data.len());
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

fn encode<V: Serialize>(value: &V, out: &mut Vec<u8>) -> Result<(), PostcardError> {
    let start = out.len();
    match postcard::serialize_with_flavor(value, Append(&mut *out)) {
        Ok(()) => Ok(()),
        Err(e) => {
            out.truncate(start);
            Err(PostcardError(e))
        }
    }
}

fn decode<V: DeserializeOwned>(input: &mut &[u8]) -> Result<V, PostcardError> {
    let (value, rest) = postcard::take_from_bytes(input).map_err(PostcardError)?;
    *input = rest;
    Ok(value)
}
