//! cargo-fuzz target `reply_framer`: the property is autopeer_fuzz::reply_framer
//! (fuzz/src/lib.rs, shared with tests/fuzz_regressions.rs); nothing else here.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autopeer_fuzz::reply_framer(data));
