#![no_main]
//! See `brasa_fuzz::registry::manifest`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| brasa_fuzz::registry::manifest(data));
