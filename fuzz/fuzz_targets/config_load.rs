//! cargo-fuzz target `config_load`: the property is autopeer_fuzz::config_load
//! (fuzz/src/lib.rs, shared with tests/fuzz_regressions.rs); nothing else here.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autopeer_fuzz::config_load(data));
