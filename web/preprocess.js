// Turn a free-hand drawing into what an MNIST model expects: the digit scaled to fit a
// 20x20 box, placed in a 28x28 frame so its centre of mass is in the middle, intensities
// in [0, 1] with 1 = ink. (That is how the MNIST images themselves were made.)

const SIDE = 28;
const BOX = 20;

/** @param {HTMLCanvasElement} source a white-on-black drawing  @returns {Float32Array|null} */
export function toMnistInput(source) {
  const ctx = source.getContext('2d', { willReadFrequently: true });
  const { width, height } = source;
  const rgba = ctx.getImageData(0, 0, width, height).data;

  let top = height, left = width, bottom = -1, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (rgba[(y * width + x) * 4] > 25) {
        if (y < top) top = y;
        if (y > bottom) bottom = y;
        if (x < left) left = x;
        if (x > right) right = x;
      }
    }
  }
  if (bottom < 0) return null; // nothing drawn

  const w = right - left + 1, h = bottom - top + 1;
  const scale = BOX / Math.max(w, h);
  const sw = Math.max(1, Math.round(w * scale)), sh = Math.max(1, Math.round(h * scale));

  // First pass: scaled glyph centred by its box, to find the centre of mass.
  const small = draw(source, left, top, w, h, (SIDE - sw) / 2, (SIDE - sh) / 2, sw, sh);
  let mass = 0, mx = 0, my = 0;
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = small[i];
    mass += v; mx += v * (i % SIDE); my += v * Math.floor(i / SIDE);
  }
  const dx = Math.round((SIDE - 1) / 2 - mx / mass), dy = Math.round((SIDE - 1) / 2 - my / mass);
  return draw(source, left, top, w, h, (SIDE - sw) / 2 + dx, (SIDE - sh) / 2 + dy, sw, sh);
}

function draw(source, sx, sy, sw, sh, dx, dy, dw, dh) {
  const canvas = new OffscreenCanvas(SIDE, SIDE);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, SIDE, SIDE);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, sx, sy, sw, sh, dx, dy, dw, dh);
  const rgba = ctx.getImageData(0, 0, SIDE, SIDE).data;
  const out = new Float32Array(SIDE * SIDE);
  for (let i = 0; i < out.length; i++) out[i] = rgba[i * 4] / 255;
  return out;
}

/** Paint 784 intensities onto a 28x28 canvas (the "what the model sees" preview). */
export function paintPreview(canvas, pixels) {
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = Math.round((pixels ? pixels[i] : 0) * 255);
    img.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(img, 0, 0);
}
