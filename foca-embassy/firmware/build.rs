//! Puts memory.x where the linker (cortex-m-rt's link.x) finds it, and
//! passes the link arguments here rather than in `.cargo/config.toml`:
//! a `RUSTFLAGS` variable, even an empty one, replaces the config's
//! rustflags, and the firmware would then link without its memory map.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // The linker maps that size_by_crate.py reads, one a binary: always
    // <this package>/target/firmware.map (the hub firmware) and lan.map,
    // wherever the target directory is.
    let map_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("target");
    fs::create_dir_all(&map_dir).unwrap();
    for (bin, map) in [
        ("foca-embassy-firmware", "firmware.map"),
        ("lan", "lan.map"),
    ] {
        let map = map_dir.join(map);
        println!("cargo:rustc-link-arg-bin={bin}=-Map={}", map.display());
    }
}
