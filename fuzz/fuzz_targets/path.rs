#![no_main]

include!("../harness/path.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
