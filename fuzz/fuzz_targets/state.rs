#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bwmon::fuzzing::state(data));
