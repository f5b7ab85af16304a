//! A small hand-written codec and a pass-through envelope for tests,
//! examples and doctests.
//!
//! [`TestCodec`] encodes [`GenerationalId<u32>`] identities in fixed-width
//! big-endian fields. It is strict (every tag and state byte is checked) and
//! never panics, but it is not a wire format to deploy: use `foca-codec`.
//! [`NoEnvelope`] seals nothing. [`NewsOnce`] is a custom-broadcast handler
//! for tests: every distinct item is news once.

use alloc::vec::Vec;
use core::fmt;

use crate::{Codec, GenerationalId, Header, Member, Message, State};

/// The identity [`TestCodec`] encodes.
pub type TestId = GenerationalId<u32>;

/// A fixed-width codec for [`TestId`]. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestCodec;

/// Why [`TestCodec`] could not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestCodecError {
    /// The input ended early.
    Truncated,
    /// A tag or state byte had no meaning.
    BadTag(u8),
}

impl fmt::Display for TestCodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestCodecError::Truncated => f.write_str("input ended early"),
            TestCodecError::BadTag(t) => write!(f, "unknown tag {t}"),
        }
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_id(out: &mut Vec<u8>, id: &TestId) {
    put_u32(out, *id.address());
    put_u32(out, id.generation());
}

fn take_u8(input: &mut &[u8]) -> Result<u8, TestCodecError> {
    let (first, rest) = input.split_first().ok_or(TestCodecError::Truncated)?;
    *input = rest;
    Ok(*first)
}

fn take_u32(input: &mut &[u8]) -> Result<u32, TestCodecError> {
    let (head, rest) = input
        .split_first_chunk::<4>()
        .ok_or(TestCodecError::Truncated)?;
    *input = rest;
    Ok(u32::from_be_bytes(*head))
}

fn take_id(input: &mut &[u8]) -> Result<TestId, TestCodecError> {
    let addr = take_u32(input)?;
    let generation = take_u32(input)?;
    Ok(GenerationalId::new(addr, generation))
}

impl Codec<TestId> for TestCodec {
    type Error = TestCodecError;

    fn encode_header(
        &mut self,
        header: &Header<TestId>,
        out: &mut Vec<u8>,
    ) -> Result<(), Self::Error> {
        put_id(out, &header.src);
        put_u32(out, header.src_incarnation);
        put_id(out, &header.dst);
        match &header.message {
            Message::Ping(n) => {
                out.push(0);
                put_u32(out, *n);
            }
            Message::Ack(n) => {
                out.push(1);
                put_u32(out, *n);
            }
            Message::PingReq {
                target,
                probe_number,
            } => {
                out.push(2);
                put_id(out, target);
                put_u32(out, *probe_number);
            }
            Message::IndirectPing {
                origin,
                probe_number,
            } => {
                out.push(3);
                put_id(out, origin);
                put_u32(out, *probe_number);
            }
            Message::IndirectAck {
                origin,
                probe_number,
            } => {
                out.push(4);
                put_id(out, origin);
                put_u32(out, *probe_number);
            }
            Message::ForwardedAck {
                target,
                probe_number,
            } => {
                out.push(5);
                put_id(out, target);
                put_u32(out, *probe_number);
            }
            Message::Announce => out.push(6),
            Message::Feed => out.push(7),
            Message::Gossip => out.push(8),
            Message::Broadcast => out.push(9),
            Message::TurnUndead => out.push(10),
            Message::Sync { reply } => {
                out.push(11);
                out.push(u8::from(*reply));
            }
            Message::Nack(probe_number) => {
                out.push(12);
                put_u32(out, *probe_number);
            }
        }
        Ok(())
    }

    fn decode_header(&mut self, input: &mut &[u8]) -> Result<Header<TestId>, Self::Error> {
        let src = take_id(input)?;
        let src_incarnation = take_u32(input)?;
        let dst = take_id(input)?;
        let message = match take_u8(input)? {
            0 => Message::Ping(take_u32(input)?),
            1 => Message::Ack(take_u32(input)?),
            2 => Message::PingReq {
                target: take_id(input)?,
                probe_number: take_u32(input)?,
            },
            3 => Message::IndirectPing {
                origin: take_id(input)?,
                probe_number: take_u32(input)?,
            },
            4 => Message::IndirectAck {
                origin: take_id(input)?,
                probe_number: take_u32(input)?,
            },
            5 => Message::ForwardedAck {
                target: take_id(input)?,
                probe_number: take_u32(input)?,
            },
            6 => Message::Announce,
            7 => Message::Feed,
            8 => Message::Gossip,
            9 => Message::Broadcast,
            10 => Message::TurnUndead,
            11 => Message::Sync {
                reply: match take_u8(input)? {
                    0 => false,
                    1 => true,
                    tag => return Err(TestCodecError::BadTag(tag)),
                },
            },
            12 => Message::Nack(take_u32(input)?),
            tag => return Err(TestCodecError::BadTag(tag)),
        };
        Ok(Header {
            src,
            src_incarnation,
            dst,
            message,
        })
    }

    fn encode_member(
        &mut self,
        member: &Member<TestId>,
        out: &mut Vec<u8>,
    ) -> Result<(), Self::Error> {
        put_id(out, member.id());
        put_u32(out, member.incarnation());
        out.push(member.state() as u8);
        Ok(())
    }

    fn decode_member(&mut self, input: &mut &[u8]) -> Result<Member<TestId>, Self::Error> {
        let id = take_id(input)?;
        let incarnation = take_u32(input)?;
        let state = match take_u8(input)? {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            3 => State::Left,
            tag => return Err(TestCodecError::BadTag(tag)),
        };
        Ok(Member::new(id, incarnation, state))
    }
}

/// An [`Envelope`](crate::Envelope) that passes payloads through untouched:
/// no magic, no label, no checksum, zero overhead. For tests, examples and
/// doctests of the core alone; a deployment wants `foca-codec`'s envelope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoEnvelope;

impl crate::Envelope for NoEnvelope {
    type SealError = core::convert::Infallible;
    type Rejections = ();

    fn overhead(&self) -> usize {
        0
    }

    fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Self::SealError> {
        out.clear();
        out.extend_from_slice(payload);
        Ok(())
    }

    fn open<'a>(&mut self, datagram: &'a mut [u8]) -> Result<crate::Opened<'a>, crate::Refusal> {
        Ok(crate::Opened::plain(datagram))
    }

    fn rejections(&self) {}
}

/// A custom-broadcast handler for tests: items are byte strings, and each
/// distinct one is news once (the first time this member hears of it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewsOnce {
    /// Every item heard of so far.
    pub seen: alloc::collections::BTreeSet<Vec<u8>>,
}

/// An item [`NewsOnce`] accepted: it invalidates only itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewsItem(pub Vec<u8>);

impl crate::Invalidates for NewsItem {
    type Key = Vec<u8>;

    fn key(&self) -> Vec<u8> {
        self.0.clone()
    }

    fn invalidates(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T> crate::BroadcastHandler<T> for NewsOnce {
    type Broadcast = NewsItem;
    type Error = core::convert::Infallible;

    fn receive_item(
        &mut self,
        item: &[u8],
        _: Option<&T>,
    ) -> Result<Option<NewsItem>, Self::Error> {
        let news = self.seen.insert(item.to_vec());
        Ok(news.then(|| NewsItem(item.to_vec())))
    }
}
