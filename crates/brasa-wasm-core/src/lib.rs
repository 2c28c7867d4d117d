//! wasm-bindgen bindings of brasa's registry logic (`registry*` functions: spec parsing,
//! manifest validation and version resolution, integrity, cache eviction). Model builds export
//! them through brasa-wasm; the npm package also ships them alone (`dist/core/`), so a client
//! can resolve a version and load the model's code from the registry before it has any build.

pub mod registry;
