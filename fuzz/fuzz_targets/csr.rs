#![no_main]

include!("../harness/csr.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
