// brasa's pool helper, put into a threaded build's glue by `brasa build` in place of
// wasm-bindgen-rayon 1.3's `workerHelpers.no-bundler.js`, with its contract: the Rust side
// calls `startWorkers(module, memory, builder)`, and each pool Worker runs this glue and then
// `wbg_rayon_start_worker(receiver)`, which only returns when the pool ends. On top of it:
// - a pool Worker that cannot start (a CSP without `blob:` Workers, a failed instantiation)
//   rejects `initThreadPool`, where it would otherwise wait for ever;
// - a pool thread whose instance traps (a panic or an allocation failure inside a parallel
//   step) says so on the `BroadcastChannel` named by `globalThis.__brasaPoolChannel` where
//   `initThreadPool` was called. The thread that waits for that step is blocked in wasm and
//   will never see the Worker's `error` event; brasa's loader listens on the channel instead.

function brasaNextMessage(target, type) {
  return new Promise((resolve) => {
    target.addEventListener('message', function listener({ data }) {
      if (data == null || data.type !== type) return;
      target.removeEventListener('message', listener);
      resolve(data);
    });
  });
}

function brasaErrorText(err) {
  return String((err && err.message) || err);
}

// In a pool Worker: the start message, which names a module to import. Never on a window,
// which any frame can post to.
const brasaOnWindow = typeof Window === 'function' && self instanceof Window;
if (!brasaOnWindow) brasaNextMessage(self, 'wasm_bindgen_worker_init').then(async ({ mainJS, module, memory, receiver, channel }) => {
  // What a panic printed last (the panic hook writes to console.error), for the trap report:
  // under Node this Worker's output travels through the blocked thread, and is lost.
  let panicked = '';
  const consoleError = console.error;
  console.error = (...args) => {
    panicked = args.map(String).join(' ');
    consoleError.apply(console, args);
  };
  let glue;
  try {
    glue = await import(mainJS);
    await glue.default({ module_or_path: module, memory });
  } catch (err) {
    postMessage({ type: 'brasa_pool_worker_failed', message: brasaErrorText(err) });
    return;
  }
  postMessage({ type: 'wasm_bindgen_worker_ready' });
  try {
    glue.wbg_rayon_start_worker(receiver);
  } catch (err) {
    if (!channel || typeof BroadcastChannel !== 'function') throw err;
    // Reported, not thrown on: the loader ends this pool with the Worker that started it (an
    // uncaught error in a nested Deno Worker would travel up to the process).
    const what = panicked.split(/\n\s*Stack:/)[0].replace(/\s+/g, ' ').trim().slice(0, 600);
    new BroadcastChannel(channel).postMessage({ type: 'brasa_pool_trap', message: what ? `${brasaErrorText(err)} (${what})` : brasaErrorText(err) });
  }
});

// The pool's Workers, kept referenced: Firefox collects Workers that share a wasm memory and
// that nothing roots (https://bugzilla.mozilla.org/show_bug.cgi?id=1702191).
let brasaPoolWorkers = [];

export async function startWorkers(module, memory, builder) {
  const count = builder.numThreads();
  if (count === 0) throw new Error('a thread pool needs at least one thread');
  const init = {
    type: 'wasm_bindgen_worker_init',
    module,
    memory,
    receiver: builder.receiver(),
    mainJS: builder.mainJS(),
    channel: globalThis.__brasaPoolChannel,
  };
  // Each Worker runs this module from a `blob:` URL: `new Worker` refuses a script of another
  // origin (a package on a CDN).
  const script = URL.createObjectURL(await (await fetch(import.meta.url)).blob());
  const workers = [];
  try {
    await Promise.all(
      Array.from({ length: count }, () => {
        const worker = new Worker(script, { type: 'module' });
        workers.push(worker);
        return new Promise((resolve, reject) => {
          worker.addEventListener('message', function listener({ data }) {
            if (data == null) return;
            if (data.type === 'wasm_bindgen_worker_ready') {
              worker.removeEventListener('message', listener);
              resolve();
            } else if (data.type === 'brasa_pool_worker_failed') {
              reject(new Error(`a thread of the pool could not start: ${data.message}`));
            }
          });
          worker.addEventListener('error', (event) => reject(new Error(`a thread of the pool could not start: ${(event && event.message) || 'its Worker failed'}`)));
          worker.postMessage(init);
        });
      }),
    );
  } catch (err) {
    for (const worker of workers) worker.terminate();
    throw err;
  } finally {
    URL.revokeObjectURL(script);
  }
  brasaPoolWorkers = workers;
  builder.build();
}
