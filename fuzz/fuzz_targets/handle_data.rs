//! Feeds arbitrary bytes to a running member (postcard codec, a few members
//! in every state applied): first raw, then, if it opens, the payload of a
//! plain envelope.
//!
//! Checked (see `foca_fuzz::feed_and_check`): no panic, no `Err`, replies
//! within `max_packet_size`, and a datagram counted as dropped changes
//! neither the member table nor this member's identity or incarnation.
#![no_main]

use foca_fuzz::{feed_and_check, fuzzed_member, plain_envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut foca = fuzzed_member();
    feed_and_check(&mut foca, data);
    let mut envelope = plain_envelope();
    if let Ok(payload) = envelope.open(data) {
        feed_and_check(&mut foca, payload);
    }
});
