#![no_main]

include!("../harness/token.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
