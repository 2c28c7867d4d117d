#![no_main]
//! See `brasa_fuzz::weights::burnpack`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| brasa_fuzz::weights::burnpack(data));
