//! The datagram layout: parsed into a [`Datagram`], emitted with a
//! [`Writer`] (after smoltcp's `wire`). The state machine never frames
//! bytes; this module does, and states every bound.
//!
//! A payload (what an [`Envelope`](crate::Envelope) seals) is laid out as:
//!
//! ```text
//! +----------------+-----------+-----------+-------+--------------------+-----------+----------------------------+
//! | Header (codec) | [summary] | u16 BE: n | u8: f | n × Member (codec) | u16 BE: m | m × (u16 BE length, bytes) |
//! +----------------+-----------+-----------+-------+--------------------+-----------+----------------------------+
//! ```
//!
//! - The header and each member are encoded by the [`Codec`]; everything
//!   else is written here.
//! - The first `f ≤ n` updates are the sender's own *findings*: suspicions
//!   it raised or confirmed from its own failed probes (Lifeguard's
//!   independent confirmations, at most [`MAX_FINDINGS`]); the rest is
//!   news it passes on.
//! - A [`Message::Sync`] carries a summary right after its header:
//!   `u16 BE: k` then `k × u16 BE` bucket sums, `k` a power of two of at most
//!   [`MAX_SUMMARY_SUMS`]. Other messages have no summary section.
//! - Custom broadcast items are framed by a big-endian length
//!   ([`ITEM_FRAME`] bytes), never empty.
//! - A request for a large answer (a [`Message::Announce`], answered with a
//!   feed, and a [`Message::Sync`] request, answered with records) ends with
//!   padding ([`pad`], [`is_padded`]): `u16 BE: p`, then `p` zero bytes. A
//!   member answers an address that has not proven itself with at most
//!   three times what it received from it, so requests are padded to a
//!   third of a datagram (after QUIC's padded Initial). The length makes
//!   the padding exact: a damaged count cannot turn padding into items.
//!
//! Bounds (what [`parse`] checks before anything is applied):
//! - every section is counted, and a datagram must end exactly where its
//!   last item ends: one cut short anywhere (a receive buffer too small) or
//!   with trailing bytes (or an announce whose padding is not exact) is
//!   refused whole;
//! - a member takes at least one byte (a codec that consumes nothing is
//!   refused), an item at least [`ITEM_FRAME`] + 1: so the vectors parsing
//!   allocates hold at most as many entries as the datagram has bytes;
//! - a datagram is at most the config's `max_packet_size`
//!   ([`MAX_PACKET_SIZE`](crate::MAX_PACKET_SIZE) at most), so every count
//!   fits its `u16`.

use alloc::vec::Vec;
use core::fmt;

use crate::{Codec, Error, Header, Member, Message};

/// Bytes of a section count (`u16` big-endian).
pub const COUNT_LEN: usize = 2;
/// Bytes of the findings count (a `u8`).
pub const FINDINGS_LEN: usize = 1;
/// Most findings a datagram marks (the count is a `u8`).
pub const MAX_FINDINGS: usize = u8::MAX as usize;
/// Bytes of the section counts every datagram has (updates, findings,
/// items).
pub const SECTION_COUNTS: usize = 2 * COUNT_LEN + FINDINGS_LEN;
/// Bytes framing each custom broadcast item (its `u16` BE length).
pub const ITEM_FRAME: usize = 2;
/// Most bucket sums a summary carries (256: 512 bytes of sums).
pub const MAX_SUMMARY_SUMS: usize = 1 << crate::members::MAX_BUCKET_BITS;
/// Bytes that must remain for items after the largest header and the
/// section counts: a `max_packet_size` that leaves less is refused
/// ([`Error::HeaderTooLarge`]), since such datagrams could carry no news.
pub const MIN_ITEM_ROOM: usize = 16;

/// A summary section: big-endian bucket sums, as received (not copied).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary<'a>(&'a [u8]);

impl<'a> Summary<'a> {
    /// How many bucket sums it holds.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// Whether it holds no sum (every message but `Sync`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sums, in bucket order.
    pub fn sums(&self) -> impl Iterator<Item = u16> + 'a {
        self.0
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }
}

/// A datagram parsed in full; nothing of it applied yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram<'a, T> {
    /// Who sent it, to whom, asking what.
    pub header: Header<T>,
    /// A `Sync`'s summary (empty for other messages).
    pub summary: Summary<'a>,
    /// Membership updates.
    pub updates: Vec<Member<T>>,
    /// How many of the first `updates` are the sender's own findings
    /// (suspicions from its own failed probes).
    pub findings: usize,
    /// Custom broadcast items, unframed.
    pub broadcasts: Vec<&'a [u8]>,
}

/// Which part of a datagram failed to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The codec refused the header.
    Header,
    /// The summary's count is not a power of two of at most
    /// [`MAX_SUMMARY_SUMS`], or the sums are cut short.
    Summary,
    /// The update or findings count is missing or lies (more findings than
    /// updates), or the codec refused an update.
    Updates,
    /// The item count is missing or lies, or an item is empty or cut short.
    Broadcasts,
    /// Bytes follow the last item.
    TrailingBytes,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Header => "bad header",
            ParseError::Summary => "bad summary section",
            ParseError::Updates => "bad updates section",
            ParseError::Broadcasts => "bad custom broadcasts section",
            ParseError::TrailingBytes => "trailing bytes after the last item",
        })
    }
}

impl core::error::Error for ParseError {}

/// Reads a big-endian `u16` off the front of `input`.
fn take_count(input: &mut &[u8]) -> Option<usize> {
    let (head, rest) = input.split_first_chunk::<COUNT_LEN>()?;
    *input = rest;
    Some(usize::from(u16::from_be_bytes(*head)))
}

/// Parses a whole payload, or nothing: a failure anywhere refuses it.
/// Allocations are bounded by its length (see the [module docs](self)).
pub fn parse<'a, T, C: Codec<T>>(
    codec: &mut C,
    data: &'a [u8],
) -> Result<Datagram<'a, T>, ParseError> {
    let mut input = data;
    let header = codec
        .decode_header(&mut input)
        .map_err(|_| ParseError::Header)?;
    let summary = if matches!(header.message, Message::Sync { .. }) {
        parse_summary(&mut input).ok_or(ParseError::Summary)?
    } else {
        Summary::default()
    };
    let (updates, findings) = parse_updates(codec, &mut input).ok_or(ParseError::Updates)?;
    let broadcasts = parse_items(&mut input).ok_or(ParseError::Broadcasts)?;
    if is_padded(&header.message) {
        input = unpad(input).ok_or(ParseError::TrailingBytes)?;
    }
    if !input.is_empty() {
        return Err(ParseError::TrailingBytes);
    }
    Ok(Datagram {
        header,
        summary,
        updates,
        findings,
        broadcasts,
    })
}

/// Bytes a request's padding takes beyond its zeros (the length).
pub const PAD_LEN: usize = COUNT_LEN;

/// Whether a datagram carrying `message` ends with padding: the requests
/// whose answer may be a full datagram.
pub fn is_padded<T>(message: &Message<T>) -> bool {
    matches!(message, Message::Announce | Message::Sync { reply: false })
}

/// Pads a finished request (see [`is_padded`]) to `len` bytes, or to [`PAD_LEN`] more than
/// it has if that is more (see the layout above).
pub fn pad(buf: &mut Vec<u8>, len: usize) {
    let zeros = len.saturating_sub(buf.len() + PAD_LEN);
    // At most max_packet_size (≤ 65507) zeros: fits a u16.
    let count = u16::try_from(zeros).unwrap_or(u16::MAX);
    buf.extend_from_slice(&count.to_be_bytes());
    buf.resize(buf.len() + usize::from(count), 0);
}

/// What is left of a request's tail after its padding: `Some(&[])` when
/// the tail is exactly padding.
fn unpad(input: &[u8]) -> Option<&[u8]> {
    let (len, zeros) = input.split_first_chunk::<PAD_LEN>()?;
    let exact = usize::from(u16::from_be_bytes(*len)) == zeros.len();
    (exact && zeros.iter().all(|b| *b == 0)).then_some(&[])
}

fn parse_summary<'a>(input: &mut &'a [u8]) -> Option<Summary<'a>> {
    let k = take_count(input)?;
    if !k.is_power_of_two() || k > MAX_SUMMARY_SUMS || 2 * k > input.len() {
        return None;
    }
    let (sums, rest) = input.split_at(2 * k);
    *input = rest;
    Some(Summary(sums))
}

fn parse_updates<T, C: Codec<T>>(
    codec: &mut C,
    input: &mut &[u8],
) -> Option<(Vec<Member<T>>, usize)> {
    let count = take_count(input)?;
    let (&[findings], rest) = input.split_first_chunk::<FINDINGS_LEN>()?;
    *input = rest;
    let findings = usize::from(findings);
    if findings > count {
        return None;
    }
    // Each update takes at least one byte (checked below).
    if count > input.len() {
        return None;
    }
    let mut updates = Vec::with_capacity(count);
    for _ in 0..count {
        let before = input.len();
        let member = codec.decode_member(input).ok()?;
        if input.len() >= before {
            // A codec that consumes nothing would let the count lie.
            return None;
        }
        updates.push(member);
    }
    Some((updates, findings))
}

fn parse_items<'a>(input: &mut &'a [u8]) -> Option<Vec<&'a [u8]>> {
    let count = take_count(input)?;
    if count > input.len() / (ITEM_FRAME + 1) {
        return None;
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take_count(input)?;
        if len == 0 || len > input.len() {
            return None;
        }
        let (item, rest) = input.split_at(len);
        items.push(item);
        *input = rest;
    }
    Some(items)
}

/// Appends one custom broadcast item with its frame (the caller checked
/// that it fits: items longer than `u16::MAX` are refused when added).
pub fn put_item(out: &mut Vec<u8>, item: &[u8]) {
    let len = u16::try_from(item.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(item);
}

fn encode_error(e: impl fmt::Display) -> Error {
    Error::Encode(alloc::string::ToString::to_string(&e))
}

/// Emits one datagram into a buffer, never past `max` bytes: the header,
/// the summary if any, then the sender's findings
/// ([`push_finding`](Writer::push_finding), first), then updates (written
/// through [`push_update`](Writer::push_update) or straight into
/// [`buf`](Writer::buf) and counted with [`counted`](Writer::counted)), then
/// the custom broadcast items at [`finish`](Writer::finish).
pub struct Writer<'b> {
    buf: &'b mut Vec<u8>,
    max: usize,
    updates_at: usize,
    updates: usize,
    findings: usize,
}

impl<'b> Writer<'b> {
    /// Starts a datagram in `buf` (cleared first): writes the header and,
    /// for a `Sync`, the summary `sums`. Fails with
    /// [`Error::HeaderTooLarge`] if they leave no room for the section
    /// counts.
    pub fn new<T, C: Codec<T>>(
        buf: &'b mut Vec<u8>,
        max: usize,
        codec: &mut C,
        header: &Header<T>,
        sums: &[u16],
    ) -> Result<Self, Error> {
        buf.clear();
        codec.encode_header(header, buf).map_err(encode_error)?;
        if matches!(header.message, Message::Sync { .. }) {
            // At most MAX_SUMMARY_SUMS sums.
            let k = u16::try_from(sums.len()).unwrap_or(u16::MAX);
            buf.extend_from_slice(&k.to_be_bytes());
            for sum in sums {
                buf.extend_from_slice(&sum.to_be_bytes());
            }
        }
        let updates_at = buf.len();
        if updates_at + SECTION_COUNTS > max {
            return Err(Error::HeaderTooLarge {
                size: updates_at,
                max,
            });
        }
        buf.extend_from_slice(&[0; COUNT_LEN + FINDINGS_LEN]);
        Ok(Self {
            buf,
            max,
            updates_at,
            updates: 0,
            findings: 0,
        })
    }

    /// Bytes still free for items (updates and framed broadcasts).
    pub fn room(&self) -> usize {
        self.max - self.buf.len() - COUNT_LEN
    }

    /// The buffer, to write encoded updates into directly (a backlog
    /// fill); count them with [`counted`](Self::counted), and stay within
    /// [`room`](Self::room).
    pub fn buf(&mut self) -> &mut Vec<u8> {
        self.buf
    }

    /// How many updates were written so far.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Counts `n` updates written through [`buf`](Self::buf).
    pub fn counted(&mut self, n: usize) {
        self.updates += n;
    }

    /// Encodes `member` if it fits; returns whether it did.
    pub fn push_update<T, C: Codec<T>>(
        &mut self,
        codec: &mut C,
        member: &Member<T>,
    ) -> Result<bool, Error> {
        let before = self.buf.len();
        codec
            .encode_member(member, self.buf)
            .map_err(encode_error)?;
        if self.buf.len() + COUNT_LEN > self.max {
            self.buf.truncate(before);
            return Ok(false);
        }
        self.updates += 1;
        Ok(true)
    }

    /// Encodes `member` as one of the sender's own findings if it fits
    /// (findings come first: call this before any other update, at most
    /// [`MAX_FINDINGS`] times); returns whether it did.
    pub fn push_finding<T, C: Codec<T>>(
        &mut self,
        codec: &mut C,
        member: &Member<T>,
    ) -> Result<bool, Error> {
        if self.findings != self.updates || self.findings >= MAX_FINDINGS {
            return Ok(false);
        }
        let pushed = self.push_update(codec, member)?;
        self.findings += usize::from(pushed);
        Ok(pushed)
    }

    /// Writes the counts and the `count` framed items of `items` (see
    /// [`put_item`]; the caller kept them within [`room`](Self::room)).
    /// Returns the datagram's length.
    pub fn finish(self, count: usize, items: &[u8]) -> usize {
        // At most max_packet_size (≤ 65507) items of ≥ 1 byte: fits a u16.
        let updates = u16::try_from(self.updates).unwrap_or(u16::MAX);
        self.buf[self.updates_at..self.updates_at + COUNT_LEN]
            .copy_from_slice(&updates.to_be_bytes());
        // At most MAX_FINDINGS (push_finding checks).
        self.buf[self.updates_at + COUNT_LEN] = u8::try_from(self.findings).unwrap_or(u8::MAX);
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&count.to_be_bytes());
        self.buf.extend_from_slice(items);
        debug_assert!(self.buf.len() <= self.max);
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestCodec, TestId};
    use crate::{GenerationalId, State};
    use alloc::vec;

    fn header(message: Message<TestId>) -> Header<TestId> {
        Header {
            src: GenerationalId::new(1, 1),
            src_incarnation: 3,
            dst: GenerationalId::new(2, 1),
            message,
        }
    }

    #[test]
    fn emit_then_parse_round_trips_and_every_cut_is_refused() {
        let mut buf = Vec::new();
        let sums = [7u16, 0, 65535, 12];
        let h = header(Message::Sync { reply: true });
        let mut w = Writer::new(&mut buf, 200, &mut TestCodec, &h, &sums).unwrap();
        let m = Member::new(GenerationalId::new(9, 2), 4, State::Suspect);
        assert!(w.push_finding(&mut TestCodec, &m).unwrap());
        let n = Member::alive(GenerationalId::new(8, 1), 0);
        assert!(w.push_update(&mut TestCodec, &n).unwrap());
        assert!(
            !w.push_finding(&mut TestCodec, &m).unwrap(),
            "findings come first"
        );
        let mut items = Vec::new();
        put_item(&mut items, b"abc");
        put_item(&mut items, b"z");
        let len = w.finish(2, &items);
        assert_eq!(len, buf.len());
        let d = parse(&mut TestCodec, &buf).unwrap();
        assert_eq!(d.header, h);
        assert_eq!(d.summary.sums().collect::<Vec<_>>(), sums);
        assert_eq!(d.updates, vec![m, n]);
        assert_eq!(d.findings, 1);
        assert_eq!(d.broadcasts, vec![&b"abc"[..], b"z"]);
        for cut in 0..buf.len() {
            assert!(parse::<TestId, _>(&mut TestCodec, &buf[..cut]).is_err());
        }
        // The findings count sits just before the first update: 3 findings
        // of 2 updates is a lie.
        let mut empty = Vec::new();
        let bare = Writer::new(&mut empty, 200, &mut TestCodec, &h, &sums)
            .unwrap()
            .finish(0, &[]);
        let at = bare - COUNT_LEN - FINDINGS_LEN;
        assert_eq!(buf[at], 1);
        let mut lying = buf.clone();
        lying[at] = 3;
        assert_eq!(
            parse::<TestId, _>(&mut TestCodec, &lying),
            Err(ParseError::Updates)
        );
        lying[at] = 2;
        assert_eq!(parse(&mut TestCodec, &lying).unwrap().findings, 2);
        buf.push(0);
        assert_eq!(
            parse::<TestId, _>(&mut TestCodec, &buf),
            Err(ParseError::TrailingBytes)
        );
    }

    #[test]
    fn writer_never_passes_max() {
        let mut buf = Vec::new();
        let h = header(Message::Gossip);
        let mut w = Writer::new(&mut buf, 60, &mut TestCodec, &h, &[]).unwrap();
        let m = Member::alive(GenerationalId::new(9, 2), 4);
        let mut n = 0;
        while w.push_update(&mut TestCodec, &m).unwrap() {
            n += 1;
        }
        // A 21-byte header, two 13-byte updates and the counts: 52.
        assert_eq!(n, 2);
        assert_eq!(w.finish(0, &[]), 52);
        assert!(matches!(
            Writer::new(&mut buf, 20, &mut TestCodec, &h, &[]),
            Err(Error::HeaderTooLarge { .. })
        ));
    }
}
