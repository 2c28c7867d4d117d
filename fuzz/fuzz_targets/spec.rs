#![no_main]
//! See `brasa_fuzz::registry::spec`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| brasa_fuzz::registry::spec(data));
