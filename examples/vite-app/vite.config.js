import { defineConfig } from 'vite';

export default defineConfig({
  // Top-level await in main.js.
  build: { target: 'es2022' },
});
