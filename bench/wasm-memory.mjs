// Wasm memory of a page and of the workers it starts, so the figure means the same for
// runtimes that compute on the page (onnxruntime-web, TF.js, brasa's single-threaded builds)
// and in a Worker (brasa's threaded builds run in one the loader manages).
//
// Every realm gets the same hook before any of its own code runs: the page through Playwright's
// init script, each worker the page starts through the DevTools protocol (auto-attached, paused
// on start, hooked, resumed). The hook remembers the memories a realm makes: those it
// constructs (`new WebAssembly.Memory`: a threaded build's shared memory, Emscripten's), and
// those a module it instantiates defines (exported, where the module imports no memory). A
// memory another realm made and passed in (a thread pool's workers import their creator's) is
// not counted again; so every memory counts once, in the realm that made it, and the total is
// their sum. Workers started by workers are not hooked: thread pools, whose memory is their
// creator's. (A heap walk, `Runtime.queryObjects`, would need no hook, but it never returned
// on a page running onnxruntime-web.) Wasm memory never shrinks, so this is also the peak.

/** The hook: `self.__benchWasmMemories()` lists `[bytes, shared]` per memory this realm made. */
const HOOK = `(() => {
  if (self.__benchWasmMemories) return;
  const made = new Set();
  const Memory = WebAssembly.Memory;
  const importsMemory = (module) => {
    try { return WebAssembly.Module.imports(module).some((i) => i.kind === 'memory'); } catch { return true; }
  };
  const track = (instance, module) => {
    if (!importsMemory(module)) for (const v of Object.values(instance.exports)) if (v instanceof Memory) made.add(v);
    return instance;
  };
  WebAssembly.Memory = new Proxy(Memory, { construct: (target, args) => { const m = new target(...args); made.add(m); return m; } });
  WebAssembly.Instance = new Proxy(WebAssembly.Instance, { construct: (target, args) => track(new target(...args), args[0]) });
  for (const name of ['instantiate', 'instantiateStreaming']) {
    const original = WebAssembly[name];
    if (!original) continue;
    WebAssembly[name] = async (...args) => {
      const result = await original.apply(WebAssembly, args);
      // From bytes: { module, instance }; from a module: the instance.
      if (result.instance) track(result.instance, result.module);
      else track(result, args[0]);
      return result;
    };
  }
  const shared = (b) => typeof SharedArrayBuffer === 'function' && b instanceof SharedArrayBuffer;
  self.__benchWasmMemories = () => [...made].map((m) => [m.buffer.byteLength, shared(m.buffer)]);
})();`;

/**
 * Hook `page` and the workers it will start; call before it navigates.
 * @param {import('playwright-core').BrowserContext} context
 * @param {import('playwright-core').Page} page
 */
export async function trackWasmMemory(context, page) {
  await page.addInitScript(HOOK);
  const cdp = await context.newCDPSession(page);
  let id = 0;
  cdp.on('Target.attachedToTarget', (e) => {
    // Not flattened: Playwright's session speaks to one target, so messages go through the page's.
    const send = (method, params = {}) => cdp.send('Target.sendMessageToTarget', { sessionId: e.sessionId, message: JSON.stringify({ id: ++id, method, params }) });
    // In order: the hook runs before the worker's script does.
    const hooked = e.targetInfo.type === 'worker' ? send('Runtime.evaluate', { expression: HOOK }) : Promise.resolve();
    // Resumed whatever happened to the hook: a worker left paused would hang the page.
    hooked.catch(() => {}).then(() => send('Runtime.runIfWaitingForDebugger')).catch(() => {});
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: true, flatten: false });
}

/**
 * Bytes of wasm memory made by a page hooked by {@link trackWasmMemory} and its workers, and
 * per realm what was found (`memories: null`: a realm without the hook, or one that did not
 * answer).
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{ bytes: number, realms: { url: string, memories: [number, boolean][] | null, error?: string }[] }>}
 */
export async function readWasmMemory(page, { timeoutMs = 3_000 } = {}) {
  const ask = async (target) => {
    let timer;
    const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs / 1000} s`)), timeoutMs); });
    try {
      return { url: target.url(), memories: await Promise.race([target.evaluate(() => self.__benchWasmMemories?.() ?? null), timeout]) };
    } catch (err) {
      // A worker blocked in a wait, or one that ended meanwhile.
      return { url: target.url(), memories: null, error: String(err.message ?? err).split('\n')[0] };
    } finally {
      clearTimeout(timer);
    }
  };
  const page_ = await ask(page);
  if (!page_.memories) throw new Error(`the page's wasm memories cannot be read (${page_.error ?? 'no hook: call trackWasmMemory before it navigates'})`);
  // Workers blocked in a wait (idle pool threads) do not answer: they made no memory.
  const realms = [page_, ...(await Promise.all(page.workers().map(ask)))];
  return { bytes: realms.flatMap((r) => r.memories ?? []).reduce((sum, [b]) => sum + b, 0), realms };
}
