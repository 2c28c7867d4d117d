import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The MNIST model package: the folder `brasa build` wrote (`index.js`, `model.json`, `cpu/`,
// `webgpu/`). In an app it is a dependency like any other (`npm install ./mnist-model`); here
// `mnist-model` points at the folder, `BRASA_MNIST_PACKAGE` or the one `cargo xtask` builds
// into `.cache/packages/mnist`.
const here = fileURLToPath(new URL('.', import.meta.url));
const mnistPackage = process.env.BRASA_MNIST_PACKAGE ?? resolve(here, '../../.cache/packages/mnist');

export default defineConfig({
  resolve: {
    alias: [{ find: /^mnist-model$/, replacement: resolve(mnistPackage, 'index.js') }],
  },
  // Top-level await in main.js.
  build: { target: 'es2022' },
});
