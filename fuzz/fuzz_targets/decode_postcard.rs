//! Decodes a header and an update from arbitrary bytes with the postcard
//! codec: no panic, and whatever decodes survives encode/decode unchanged
//! (see `foca_fuzz::check_codec`).
#![no_main]

use foca_codec::PostcardCodec;
use foca_fuzz::{Id, check_codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_codec(&mut PostcardCodec::<Id>::new(), data);
});
