import { loadModel, createClassifier, BrasaError } from 'brasa';
// The MNIST model package (`brasa build` wrote it): its wasm builds, signature and metadata
// (labels, which output holds the logits). brasa itself holds no model.
import mnist from './packages/mnist/index.js';
import { toMnistInput, paintPreview } from './preprocess.js';
import { notice, setPill } from './ui.js';

// The demo follows a channel of a static registry served next to the page (`cargo xtask demo`
// publishes ccexam's weights as 1.0.0 on `stable` and a recalibrated 1.1.0 on `canary`).
const REGISTRY = new URL('./registry/', import.meta.url);
const UPDATE_INTERVAL_MS = 10_000;
const $ = (id) => document.getElementById(id);
const pad = $('pad');
const ctx = pad.getContext('2d', { willReadFrequently: true });

const state = {
  model: null,
  classifier: null, // createClassifier(model): logits → probabilities, label, from the package's metadata
  pending: null, // the version an update check found, until update() switches to it
  latencies: [],
  last: null,
  busy: false,
  dirty: false,
  drawing: 0, // which drawing the pad holds: a clear starts another
};

// ---- model loading and backend switching ---------------------------------------------

async function load(backend, channel) {
  document.body.dataset.state = 'loading';
  setPill('loading…', '');
  $('backend-select').disabled = true;
  $('channel-select').disabled = true;
  let model = null;
  try {
    model = await loadModel(`mnist@${channel}`, {
      registry: REGISTRY,
      build: mnist,
      backend,
      updateInterval: UPDATE_INTERVAL_MS,
      onProgress: (p) => { if (!p.fromCache) setPill(`downloading ${Math.round((100 * p.loaded) / p.total)}%`, ''); },
      onEvent: (event) => onRegistryEvent(event, model),
    });
    const classifier = createClassifier(model);
    state.model?.dispose();
    state.model = model;
    state.classifier = classifier;
    state.pending = null;
    state.latencies = [];
    showBackend(model);
    showRelease(model);
    logEvent(`loaded ${model.spec} → ${model.version} on ${model.backend}`);
    document.body.dataset.state = 'ready';
    document.body.dataset.backend = model.backend;
    if (state.last) predict();
  } catch (err) {
    document.body.dataset.state = state.model ? 'ready' : 'error';
    const message = err instanceof BrasaError ? `${err.message}` : String(err);
    notice(`Could not load on ${backend}: ${message}${state.model ? ` — still running on ${state.model.backend}.` : ''}`, 'error');
    logEvent(`load failed: ${message}`, 'error');
    if (state.model) {
      showBackend(state.model, false);
      $('backend-select').value = state.model.requestedBackend;
      $('channel-select').value = state.model.channel ?? channel;
    } else {
      setPill('unavailable', '');
    }
  } finally {
    $('backend-select').disabled = false;
    $('channel-select').disabled = false;
  }
}

// ---- versions: what runs, updates, rollbacks ------------------------------------------------

function onRegistryEvent(event, model) {
  // Events of a model this page already replaced are history.
  if (model && state.model && model !== state.model) return;
  switch (event.type) {
    case 'update-available':
      state.pending = event.to;
      logEvent(`update available: ${event.from} → ${event.to}${event.notes ? ` (${event.notes})` : ''}`, 'info');
      if ($('auto-update').checked) applyUpdate();
      break;
    case 'updated':
      state.pending = null;
      logEvent(`switched ${event.from} → ${event.to}`, 'ok');
      break;
    case 'rollback':
      logEvent(`refused ${event.rejected} (${event.code}): ${event.reason}; staying on ${event.version ?? 'nothing'}`, 'error');
      break;
    case 'offline':
      logEvent(`registry unreachable (${event.reason}); serving cached ${event.version}`, 'warn');
      break;
    case 'update-check':
      if (event.outcome === 'failed') logEvent(`update check failed: ${event.reason}`, 'warn');
      else if (event.outcome === 'current') $('last-check').textContent = `checked ${new Date().toLocaleTimeString()} (HTTP ${event.status})`;
      if (event.outcome !== 'available') state.pending = null;
      break;
  }
  if (state.model) showRelease(state.model);
}

function showRelease(model) {
  const release = model.release;
  $('version').textContent = `v${model.version}`;
  $('channel').textContent = model.channel ? `${model.channel}${release.viaRollout ? ' (staged rollout)' : ''}` : model.spec;
  $('release-notes').textContent = release.notes ? `“${release.notes}”, published ${release.publishedAt}` : `published ${release.publishedAt}`;
  document.body.dataset.version = model.version;
  document.body.dataset.channel = model.channel ?? '';
  const apply = $('apply-update');
  apply.hidden = !state.pending;
  apply.textContent = state.pending ? `Switch to v${state.pending}` : '';
}

async function checkUpdate() {
  if (!state.model) return;
  $('check-update').disabled = true;
  try {
    const result = await state.model.checkForUpdate();
    if (result.outcome === 'current') logEvent(`up to date: ${result.version} (manifest HTTP ${result.status})`);
  } finally {
    $('check-update').disabled = false;
  }
}

async function applyUpdate() {
  const model = state.model;
  if (!model) return;
  const result = await model.update();
  if (result.updated && state.last) predict();
  showRelease(model);
}

function logEvent(text, kind = '') {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  const list = $('events');
  list.prepend(li);
  while (list.children.length > 30) list.lastChild.remove();
}

function showBackend(model, clearNotice = true) {
  const adapter = model.adapter;
  const label = model.backend === 'webgpu'
    ? `WebGPU${adapter?.isFallbackAdapter ? ' (software adapter)' : ''}`
    : 'CPU · wasm SIMD';
  setPill(label, model.backend);
  if (model.fallbackReason) {
    notice(`WebGPU is unavailable, so the model runs on the CPU. ${model.fallbackReason}`, 'warn');
  } else if (clearNotice) {
    notice(null);
  }
  const info = model.info;
  $('model-info').textContent =
    `${info.name}: ${info.parameters.toLocaleString('en')} parameters, ${(info.weightBytes / 1048576).toFixed(1)} MiB of weights`;
}

// ---- prediction -------------------------------------------------------------------------

/** Predict the current drawing; coalesces requests that arrive while one is running. */
async function predict() {
  if (!state.model) return;
  if (state.busy) {
    state.dirty = true;
    return;
  }
  const pixels = toMnistInput(pad);
  paintPreview($('preview'), pixels);
  if (!pixels) return showEmpty();
  state.busy = true;
  // A pad cleared while this runs makes its answer stale.
  const drawing = state.drawing;
  try {
    const result = await state.classifier.run(pixels);
    if (drawing !== state.drawing) return;
    state.last = result;
    render(result);
  } catch (err) {
    notice(`Prediction failed: ${err.message}`, 'error');
  } finally {
    state.busy = false;
    if (state.dirty) {
      state.dirty = false;
      requestAnimationFrame(predict);
    }
  }
}

function render(result) {
  const probs = result.probabilities;
  $('digit').textContent = String(result.label);
  $('confidence').textContent = `${(probs[result.label] * 100).toFixed(1)}% sure`;
  state.latencies.push(result.latencyMs);
  if (state.latencies.length > 50) state.latencies.shift();
  const sorted = [...state.latencies].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  $('latency').textContent = `${result.latencyMs.toFixed(2)} ms this prediction · median ${median.toFixed(2)} ms · ${result.backend}`;
  document.body.dataset.prediction = String(result.label);
  const rows = $('bars').children;
  for (let d = 0; d < 10; d++) {
    const row = rows[d];
    row.classList.toggle('top', d === result.label);
    row.querySelector('.fill').style.width = `${(probs[d] * 100).toFixed(1)}%`;
    row.querySelector('.pct').textContent = `${(probs[d] * 100).toFixed(1)}%`;
  }
}

function showEmpty() {
  $('digit').textContent = '?';
  $('confidence').textContent = 'draw to predict';
  delete document.body.dataset.prediction;
  for (const row of $('bars').children) {
    row.classList.remove('top');
    row.querySelector('.fill').style.width = '0';
    row.querySelector('.pct').textContent = '';
  }
}

// ---- drawing ------------------------------------------------------------------------------

function clearPad() {
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, pad.width, pad.height);
  state.drawing++;
  state.last = null;
  paintPreview($('preview'), null);
  showEmpty();
}

function setupPad() {
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.lineWidth = 20;
  ctx.strokeStyle = '#fff';
  let last = null;
  const point = (e) => {
    const r = pad.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * pad.width) / r.width, y: ((e.clientY - r.top) * pad.height) / r.height };
  };
  pad.addEventListener('pointerdown', (e) => {
    pad.setPointerCapture(e.pointerId);
    last = point(e);
    ctx.beginPath();
    ctx.arc(last.x, last.y, ctx.lineWidth / 2, 0, Math.PI * 2);
    ctx.fillStyle = '#fff';
    ctx.fill();
    requestAnimationFrame(predict);
  });
  pad.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = point(e);
    ctx.beginPath();
    ctx.moveTo(last.x, last.y);
    ctx.lineTo(p.x, p.y);
    ctx.stroke();
    last = p;
    requestAnimationFrame(predict);
  });
  const end = () => {
    if (last) requestAnimationFrame(predict);
    last = null;
  };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
}

function setupBars() {
  const bars = $('bars');
  for (let d = 0; d < 10; d++) {
    const li = document.createElement('li');
    li.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    bars.append(li);
  }
}

setupBars();
setupPad();
clearPad();
$('clear').addEventListener('click', clearPad);
const params = new URLSearchParams(location.search);
const initial = params.get('backend') ?? 'auto';
const initialChannel = params.get('channel') ?? 'stable';
$('backend-select').value = initial;
$('channel-select').value = initialChannel;
$('backend-select').addEventListener('change', (e) => load(e.target.value, $('channel-select').value));
$('channel-select').addEventListener('change', (e) => load($('backend-select').value, e.target.value));
$('check-update').addEventListener('click', checkUpdate);
$('apply-update').addEventListener('click', applyUpdate);

// For automated tests and curious people: the live model, its package, and a way to classify
// raw pixels (a Float32Array of 784 values per image) into the classifier's Prediction.
window.brasaDemo = {
  package: mnist,
  get model() { return state.model; },
  get classifier() { return state.classifier; },
  get lastResult() { return state.last; },
  run: (pixels) => state.classifier.run(pixels),
  ready: load(initial, initialChannel),
};
