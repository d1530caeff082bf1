//! cargo-fuzz target `conf_scan`: the property is autopeer_fuzz::conf_scan
//! (fuzz/src/lib.rs, shared with tests/fuzz_regressions.rs); nothing else here.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autopeer_fuzz::conf_scan(data));
