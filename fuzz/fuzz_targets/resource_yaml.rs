#![no_main]

include!("../harness/resource_yaml.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
