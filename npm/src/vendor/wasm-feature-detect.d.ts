// Types of the copy of `wasm-feature-detect` (npm, pinned in the workspace's package.json)
// that the build puts beside the package's modules (`dist/vendor/wasm-feature-detect.js`), so
// pages without a bundler or an import map load it by a relative URL.
export { relaxedSimd, threads } from 'wasm-feature-detect';
