//! Writes a small seed corpus of valid datagrams for every target into
//! `fuzz/corpus/<target>/` (git-ignored; regenerate at will):
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus
//! ```
//!
//! - `handle_data`: datagrams for member 7000, raw and in a plain envelope;
//! - `open_envelope`: the same payloads sealed in every mode;
//! - `decode_postcard`: the raw postcard datagrams and single updates;
//! - `decode_bincode`: the hand-built datagrams framed with bincode;
//! - `endpoint_sequence`: seeded pseudo-random inputs of 256 to 4,096
//!   bytes, both variants (any bytes decode to a sequence of operations;
//!   long ones give libFuzzer long sequences from the start).

use std::fs;
use std::path::{Path, PathBuf};

use foca_codec::{BincodeCodec, PostcardCodec};
use foca_core::Codec;
use foca_fuzz::{
    CIPHERS, Id, cluster_datagrams, encrypted_envelope, handmade_datagrams, known_members,
    plain_envelope,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("writing a corpus file");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let dirs = [
        "handle_data",
        "open_envelope",
        "decode_postcard",
        "decode_bincode",
        "endpoint_sequence",
    ];
    for d in dirs {
        fs::create_dir_all(root.join(d)).expect("creating the corpus directory");
    }

    let mut postcard = PostcardCodec::<Id>::new();
    let mut datagrams = handmade_datagrams(&mut postcard);
    datagrams.extend(cluster_datagrams());

    let mut plain = plain_envelope();
    let mut sealers: Vec<_> = CIPHERS
        .into_iter()
        .enumerate()
        .map(|(i, c)| encrypted_envelope(c, 100 + i as u64))
        .collect();
    let mut wire = Vec::new();
    for (i, d) in datagrams.iter().enumerate() {
        write(&root.join("handle_data"), &format!("raw-{i:03}"), d);
        write(&root.join("decode_postcard"), &format!("dgram-{i:03}"), d);
        plain.seal(d, &mut wire).expect("fits");
        write(&root.join("handle_data"), &format!("plain-{i:03}"), &wire);
        if i % 4 == 0 {
            write(&root.join("open_envelope"), &format!("plain-{i:03}"), &wire);
            for (s, sealer) in sealers.iter_mut().enumerate() {
                sealer.seal(d, &mut wire).expect("fits");
                write(
                    &root.join("open_envelope"),
                    &format!("mode{}-{i:03}", s + 1),
                    &wire,
                );
            }
        }
    }
    for (i, m) in known_members().iter().enumerate() {
        let mut bytes = Vec::new();
        postcard.encode_member(m, &mut bytes).expect("encodes");
        write(
            &root.join("decode_postcard"),
            &format!("member-{i:03}"),
            &bytes,
        );
    }

    let mut bincode = BincodeCodec::<Id>::new();
    for (i, d) in handmade_datagrams(&mut bincode).iter().enumerate() {
        write(&root.join("decode_bincode"), &format!("dgram-{i:03}"), d);
    }
    for (i, m) in known_members().iter().enumerate() {
        let mut bytes = Vec::new();
        bincode.encode_member(m, &mut bytes).expect("encodes");
        write(
            &root.join("decode_bincode"),
            &format!("member-{i:03}"),
            &bytes,
        );
    }

    let mut rng = StdRng::seed_from_u64(0x5EED);
    for i in 0..32u8 {
        let mut bytes = vec![0u8; 256 << (i % 5)];
        rng.fill_bytes(&mut bytes);
        // The first byte picks the variant: even plain, odd sealed.
        bytes[0] = i;
        write(
            &root.join("endpoint_sequence"),
            &format!("random-{i:03}"),
            &bytes,
        );
    }

    for d in dirs {
        let n = fs::read_dir(root.join(d)).map(|r| r.count()).unwrap_or(0);
        println!("corpus/{d}: {n} files");
    }
}
