#![no_main]

include!("../harness/detect.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
