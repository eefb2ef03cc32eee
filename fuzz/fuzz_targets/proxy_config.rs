#![no_main]

include!("../harness/proxy_config.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
