// One small suite, run the same way in every runtime and entry brasa documents: a page, a
// Web Worker, a module service worker (tests/browser/runtimes.test.mjs), Node
// (tests/node/runtimes.test.mjs) and Deno (tests/deno/runtimes.test.mjs). Plain ES module
// without imports: each runtime hands in its own `brasa` entry and the MNIST package.
// Cloudflare Workers run the endpoint suite of tests/serving instead (a worker has no URL
// of its own for relative paths to resolve against).
//
// `weights`, `registry` and `missing` are given RELATIVE, as a user would write them; the
// caller checks where they resolved (the page's URL, the worker's script URL, the working
// directory) through the answers and through the URL named by the error for `missing`.

/**
 * Load (plain weights and from a registry), run, a bad input, a missing file. Resolves to
 * `{ backend, build, logits, badInput, after, registry: { version, logits }, missing }`.
 */
export async function runtimeSuite({ brasa, pkg, weights, registry, missing, pixels }) {
  const error = (e) => ({ name: e?.name, code: e?.code, message: String(e?.message ?? e) });
  const logitsOf = async (model) => [...(await model.run(new Float32Array(pixels))).logits.data];
  const out = {};
  const model = await brasa.loadModel(pkg, { weights });
  out.backend = model.backend;
  // Which wasm build runs it (`cpu`, a relaxed-SIMD or threaded one, `webgpu`).
  out.build = model.build?.name;
  out.logits = await logitsOf(model);
  try {
    await model.run(new Float32Array(783));
    out.badInput = null;
  } catch (e) {
    out.badInput = error(e);
  }
  out.after = await logitsOf(model);
  model.dispose();
  const versioned = await brasa.loadModel('mnist@stable', { registry, build: pkg, cache: new brasa.MemoryCache() });
  out.registry = { version: versioned.version, logits: await logitsOf(versioned) };
  versioned.dispose();
  try {
    await brasa.loadModel(pkg, { weights: missing });
    out.missing = null;
  } catch (e) {
    out.missing = error(e);
  }
  return out;
}
