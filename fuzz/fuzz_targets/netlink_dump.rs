#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bwmon::fuzzing::netlink_dump(data));
