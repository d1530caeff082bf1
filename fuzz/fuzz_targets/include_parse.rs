//! cargo-fuzz target `include_parse`: the property is autopeer_fuzz::include_parse
//! (fuzz/src/lib.rs, shared with tests/fuzz_regressions.rs); nothing else here.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autopeer_fuzz::include_parse(data));
