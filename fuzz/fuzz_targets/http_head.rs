#![no_main]

include!("../harness/http_head.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
