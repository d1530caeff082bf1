//! cargo-fuzz target `ctl_command`: the property is autopeer_fuzz::ctl_command
//! (fuzz/src/lib.rs, shared with tests/fuzz_regressions.rs); nothing else here.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| autopeer_fuzz::ctl_command(data));
