import { loadModel, createEmbedder, BrasaError } from 'brasa';
import { notice, setPill } from './ui.js';

// Nothing of MiniLM is imported: its registry version lists its compiled builds, its
// tokenizer and q8 weights (`brasa registry publish --code --asset tokenizer=… --dtype f32,q8`),
// and brasa fetches, verifies and caches what this page runs: one build, the smallest weights.
const REGISTRY = new URL('./registry/', import.meta.url);
const $ = (id) => document.getElementById(id);

const state = { embedder: null, busy: false, dirty: false };

async function load(backend) {
  document.body.dataset.state = 'loading';
  $('backend-select').disabled = true;
  setPill('loading…', '');
  try {
    const model = await loadModel('minilm@stable', {
      registry: REGISTRY,
      backend,
      onProgress: (p) => progress(p.fromCache ? 1 : p.loaded / p.total, p.fromCache ? `${mib(p.total)} from the cache` : `downloading ${mib(p.loaded)} of ${mib(p.total)}`),
    });
    const embedder = await createEmbedder(model); // the version's `tokenizer` asset
    state.embedder?.model.dispose();
    state.embedder = embedder;
    progress(1, `${model.spec} → ${model.version}: ${model.release.dtype} weights (${mib(model.release.files[0].size)}), ${model.backend} build from the registry`);
    setPill(model.backend === 'webgpu' ? 'WebGPU' : 'CPU', model.backend);
    $('version').textContent = `v${model.version}`;
    $('model-info').textContent = `${model.info.parameters.toLocaleString()} parameters`;
    if (model.fallbackReason) notice(`Running on the CPU: ${model.fallbackReason}`);
    document.body.dataset.backend = model.backend;
    document.body.dataset.dtype = model.release.dtype;
    document.body.dataset.state = 'ready';
    await embed();
  } catch (err) {
    document.body.dataset.state = state.embedder ? 'ready' : 'error';
    notice(`Could not load on ${backend}: ${err instanceof BrasaError ? err.message : String(err)}`, 'error');
    setPill(state.embedder ? state.embedder.model.backend : 'unavailable', state.embedder?.model.backend ?? '');
  } finally {
    $('backend-select').disabled = false;
  }
}

// One embedding pass at a time; typing meanwhile runs one more pass with the latest text.
async function embed() {
  if (!state.embedder) return;
  if (state.busy) {
    state.dirty = true;
    return;
  }
  state.busy = true;
  try {
    const sentences = $('sentences').value.split('\n').map((s) => s.trim()).filter(Boolean).slice(0, 24);
    const started = performance.now();
    const out = await state.embedder.embed(sentences);
    const total = performance.now() - started;
    draw(sentences, out);
    $('latency').textContent = `${sentences.length} sentences: ${total.toFixed(1)} ms (model ${out.latencyMs.toFixed(1)} ms, ${Array.from(out.tokens).reduce((a, b) => a + b, 0)} tokens)${out.truncated.length ? `; truncated to ${state.embedder.maxLength} tokens: ${out.truncated.map((k) => k + 1).join(', ')}` : ''}`;
    document.body.dataset.sentences = String(sentences.length);
  } catch (err) {
    notice(`Could not embed: ${err instanceof BrasaError ? err.message : String(err)}`, 'error');
  } finally {
    state.busy = false;
    if (state.dirty) {
      state.dirty = false;
      embed();
    }
  }
}

// The similarity matrix as a heat map: rows are unit vectors, so a dot product is the cosine.
function draw(sentences, { data, dims }) {
  const [n, d] = dims;
  const table = $('matrix');
  table.replaceChildren();
  const head = table.insertRow();
  head.insertCell().textContent = '';
  sentences.forEach((_, j) => { head.insertCell().textContent = String(j + 1); });
  for (let i = 0; i < n; i++) {
    const row = table.insertRow();
    const label = row.insertCell();
    label.textContent = `${i + 1}. ${sentences[i]}`;
    label.className = 'label';
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += data[i * d + k] * data[j * d + k];
      const cell = row.insertCell();
      cell.textContent = dot.toFixed(2);
      cell.dataset.value = dot.toFixed(4);
      const heat = Math.max(0, Math.min(1, dot));
      cell.style.background = `rgba(255, 122, 26, ${(heat ** 2).toFixed(3)})`;
      cell.title = `${sentences[i]}\n${sentences[j]}\ncosine ${dot.toFixed(4)}`;
    }
  }
}

function progress(fraction, text) {
  $('progress-bar').style.width = `${Math.round(100 * fraction)}%`;
  $('progress-text').textContent = text;
}
const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;

let timer = null;
$('sentences').addEventListener('input', () => {
  clearTimeout(timer);
  timer = setTimeout(embed, 150);
});
$('backend-select').addEventListener('change', (e) => load(e.target.value));
load($('backend-select').value);
