"""Reference outputs of real ONNX models, computed by onnxruntime (independent of brasa).

- PP-OCRv4 text detection (PyPI rapidocr-onnxruntime): seeded images of two sizes in, the
  probability map out (dynamic height and width).
- silero-vad (PyPI silero-vad, the op18 if-less graph): 32 consecutive 512-sample chunks of a
  seeded 16 kHz signal (silence, a tone, noise), the recurrent state carried from chunk to
  chunk; the speech probability and the state after every chunk.

Writes `<name>-reference.json`: `{ "cases": [{ "inputs": [tensor], "outputs": [tensor] }] }`
(a tensor is `{ name, dtype, dims, data }`), and for silero-vad `{ "sr", "state", "chunks":
[{ "input", "output", "stateN" }] }`.
"""

import argparse
import json

import numpy as np
import onnxruntime as ort


def tensor(name, array, dtype="float32"):
    return {"name": name, "dtype": dtype, "dims": list(array.shape), "data": array.reshape(-1).tolist()}


def ocr_det(path, out):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(20261130)
    cases = []
    for batch, height, width in [(1, 64, 96), (2, 96, 64)]:
        # Normalised like rapidocr does (mean 0.5, std 0.5 per channel): values in [-1, 1],
        # with a few bright "text" bars so the map is not uniform.
        image = rng.uniform(-1.0, 1.0, size=(batch, 3, height, width)).astype(np.float32) * 0.3
        image[:, :, height // 3 : height // 3 + 6, width // 4 : 3 * width // 4] = 0.9
        (prob,) = session.run(None, {"x": image})
        cases.append({"inputs": [tensor("x", image)], "outputs": [tensor("sigmoid_0.tmp_0", prob)]})
    json.dump({"model": "ocr-det", "source": f"onnxruntime {ort.__version__}", "cases": cases}, open(out, "w"))


def silero(path, out):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(16000)
    sr = 16000
    t = np.arange(32 * 512) / sr
    signal = np.zeros_like(t)
    signal[8 * 512 : 20 * 512] = 0.5 * np.sin(2 * np.pi * 220 * t[8 * 512 : 20 * 512])
    signal += rng.normal(0, 0.01, size=t.shape)
    signal = signal.astype(np.float32)
    state = np.zeros((2, 1, 128), dtype=np.float32)
    initial = state.copy()
    chunks = []
    for i in range(32):
        chunk = signal[i * 512 : (i + 1) * 512].reshape(1, 512)
        output, state = session.run(None, {"input": chunk, "sr": np.array(sr, dtype=np.int64), "state": state})
        chunks.append({"input": tensor("input", chunk), "output": tensor("output", output), "stateN": tensor("stateN", state)})
    json.dump(
        {"model": "silero-vad", "source": f"onnxruntime {ort.__version__}", "sr": sr, "state": tensor("state", initial), "chunks": chunks},
        open(out, "w"),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ocr-det", required=True)
    parser.add_argument("--silero", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    ocr_det(args.ocr_det, f"{args.out}/ocr-det-reference.json")
    silero(args.silero, f"{args.out}/silero-vad-reference.json")
    print(f"wrote {args.out}/ocr-det-reference.json and {args.out}/silero-vad-reference.json")
