//! The wasm builds a model package may carry (`brasa build --backend`): one list, which the
//! CLI reads and the npm package gets as generated TypeScript (`BUILD_NAMES`).

/// Every build name: the CPU builds (plain, relaxed SIMD, threaded, both), best last, then
/// WebGPU.
pub const BUILD_NAMES: [&str; 5] = ["cpu", "cpu-relaxed", "cpu-threads", "cpu-threads-relaxed", "webgpu"];
