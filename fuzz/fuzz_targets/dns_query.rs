#![no_main]

include!("../harness/dns_query.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
