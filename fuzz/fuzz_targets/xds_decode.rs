#![no_main]

include!("../harness/xds_decode.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
