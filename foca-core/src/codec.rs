//! Turning headers and member updates into bytes and back.
//!
//! The core frames datagrams itself (see [`crate::message`]); a [`Codec`] only
//! encodes one value at a time. Ready codecs (postcard, bincode) live in the
//! `foca-codec` crate; implement this trait to use your own wire format.

use alloc::vec::Vec;
use core::fmt;

use crate::{Header, Member};

/// Encodes and decodes the values the core puts on the wire.
///
/// # Contract
/// - Decoding reads from the front of `input` and advances it past what it
///   consumed. It must never panic, whatever the bytes, and must allocate at
///   most a small multiple of `input.len()`: every byte is hostile.
/// - Encoding appends to `out` and must not touch what is already there.
/// - `decode(encode(x)) == x` for every value.
pub trait Codec<T> {
    /// Why encoding or decoding failed.
    type Error: fmt::Debug + fmt::Display;

    /// Appends the encoding of `header` to `out`.
    fn encode_header(&mut self, header: &Header<T>, out: &mut Vec<u8>) -> Result<(), Self::Error>;

    /// Decodes a header from the front of `input`, advancing it.
    fn decode_header(&mut self, input: &mut &[u8]) -> Result<Header<T>, Self::Error>;

    /// Appends the encoding of one membership update to `out`.
    fn encode_member(&mut self, member: &Member<T>, out: &mut Vec<u8>) -> Result<(), Self::Error>;

    /// Decodes one membership update from the front of `input`, advancing it.
    fn decode_member(&mut self, input: &mut &[u8]) -> Result<Member<T>, Self::Error>;
}

impl<T, C: Codec<T>> Codec<T> for &mut C {
    type Error = C::Error;

    fn encode_header(&mut self, header: &Header<T>, out: &mut Vec<u8>) -> Result<(), Self::Error> {
        (**self).encode_header(header, out)
    }

    fn decode_header(&mut self, input: &mut &[u8]) -> Result<Header<T>, Self::Error> {
        (**self).decode_header(input)
    }

    fn encode_member(&mut self, member: &Member<T>, out: &mut Vec<u8>) -> Result<(), Self::Error> {
        (**self).encode_member(member, out)
    }

    fn decode_member(&mut self, input: &mut &[u8]) -> Result<Member<T>, Self::Error> {
        (**self).decode_member(input)
    }
}
