//! cargo-fuzz target `log_lines`: the property is autopeer_fuzz::log_lines
//! (fuzz/src/lib.rs, shared with tests/fuzz_regressions.rs); nothing else here.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autopeer_fuzz::log_lines(data));
