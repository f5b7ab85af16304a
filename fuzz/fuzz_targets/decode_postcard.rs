//! Decodes a header and an update from arbitrary bytes with the postcard
//! codec: no panic, and whatever decodes survives encode/decode unchanged
//! (see `foca_fuzz::check_codec`). Three identities: a socket address, a
//! string and a byte vector (the last two allocate what the input claims,
//! within the codec's cap; libFuzzer's `-malloc_limit_mb` catches more).
#![no_main]

use foca_codec::PostcardCodec;
use foca_fuzz::{BytesId, Id, StringId, check_codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_codec(&mut PostcardCodec::<Id>::new(), data);
    check_codec(&mut PostcardCodec::<StringId>::new(), data);
    check_codec(&mut PostcardCodec::<BytesId>::new(), data);
});
