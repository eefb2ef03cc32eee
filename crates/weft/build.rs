//! Lays out the request path's code together in release builds (ADR 35).
//!
//! `symbol-order.txt` lists the functions a proxy runs per request, hottest first, as
//! `ORDER=crates/weft/symbol-order.txt bench/instructions.sh target/release/weft`
//! wrote them. LLD (the default linker of `x86_64-unknown-linux-gnu` since Rust 1.90)
//! places them first in `.text`, so serving touches a few dense pages of the binary
//! instead of pages scattered over all of it. A name that no longer exists is skipped
//! silently; regenerate the file when the request path changes much.
//!
//! Not applied to debug builds, other targets, or a build that names its own linker
//! (`-C linker=…`, `-C link-arg=-fuse-ld=…`, `-C link-self-contained=-linker`), which
//! may not understand the option; `WEFT_SYMBOL_ORDER=0` turns it off.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=WEFT_SYMBOL_ORDER");
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let own_linker = flags.contains("linker=")
        || flags.contains("fuse-ld")
        || flags.contains("link-self-contained")
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some();
    let disabled = env::var("WEFT_SYMBOL_ORDER").is_ok_and(|v| v == "0");
    if !release || target != "x86_64-unknown-linux-gnu" || own_linker || disabled {
        return;
    }
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={dir}/symbol-order.txt");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
