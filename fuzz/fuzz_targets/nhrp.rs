//! cargo-fuzz target `nhrp`: the property is autopeer_fuzz::nhrp_message
//! (fuzz/src/lib.rs, shared with tests/fuzz_regressions.rs); nothing else here.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autopeer_fuzz::nhrp_message(data));
