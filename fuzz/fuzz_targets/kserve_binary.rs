#![no_main]
//! See `brasa_fuzz::kserve::binary`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| brasa_fuzz::kserve::binary(data));
