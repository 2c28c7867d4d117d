"""Independent reference for brasa's MNIST model: a numpy forward pass of ccexam's state dict.

Reads the PyTorch ``.pth`` file with nothing but ``zipfile``, ``pickle`` and numpy (no torch),
builds a fixed set of inputs (ccexam's sample images, hand-drawn ASCII digits, synthetic
patterns, seeded noise) and writes, for each, the 784 input values and the logits computed
here in float64. brasa's tests on every backend compare against this file.

With ``--variant-out`` it also writes a second checkpoint, "1.1.0" of the registry tests: the
same network with its output layer rescaled (a recalibration: logits change, classes do not),
written by copying the zip and replacing two tensor storages, plus its reference logits.

Usage: python mnist_reference.py --pth mnist.pth --samples DIR --out reference.json
       [--variant-out mnist-recalibrated.pth]
"""

import argparse
import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 28
MEAN, STD = 0.1307, 0.3081

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _Storage(np.ndarray):
    """A storage's values, remembering which archive entry they came from."""

    brasa_key = None


def load_state_dict(path, storage_keys=None):
    """Load a torch.save()'d state dict of dense tensors as numpy arrays; with ``storage_keys``
    (a list), append each tensor's storage key in the order the tensors are built."""
    archive = zipfile.ZipFile(path)
    pkl_name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    prefix = pkl_name[: -len("data.pkl")]

    class StateDictUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return rebuild_tensor
            if module == "torch" and name in _DTYPES:
                return _DTYPES[name]
            if module == "collections" and name == "OrderedDict":
                import collections

                return collections.OrderedDict
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

        def persistent_load(self, pid):
            _, dtype, key, _location, _numel = pid
            raw = archive.read(f"{prefix}data/{key}")
            storage = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).view(_Storage)
            storage.brasa_key = key
            return storage

    def rebuild_tensor(storage, offset, size, stride, *_):
        if storage_keys is not None:
            storage_keys.append((storage.brasa_key, offset))
        itemsize = storage.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=[s * itemsize for s in stride]
        ).copy()

    return StateDictUnpickler(archive.open(pkl_name)).load()


def conv2d_same3x3(x, weight, bias):
    """x: [N, C, H, W], weight: [O, C, 3, 3], stride 1, padding 1."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.empty((n, c, 3, 3, h, w), dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            cols[:, :, i, j] = padded[:, :, i : i + h, j : j + w]
    out = np.einsum("ncklhw,ockl->nohw", cols, weight)
    return out + bias[None, :, None, None]


def maxpool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


RECALIBRATION = {"classifier.2.weight": 1.25, "classifier.2.bias": 1.25}


def write_variant(src, dst):
    """Copy checkpoint ``src`` to ``dst`` with the RECALIBRATION scales applied; returns the
    variant's state dict."""
    keys = []
    state = load_state_dict(src, keys)
    by_name = dict(zip(state.keys(), keys))
    archive = zipfile.ZipFile(src)
    prefix = next(n for n in archive.namelist() if n.endswith("data.pkl"))[: -len("data.pkl")]
    replaced = {}
    for name, scale in RECALIBRATION.items():
        key, offset = by_name[name]
        if offset != 0:
            raise SystemExit(f"{name} does not start its storage; cannot rewrite it in place")
        state[name] = (state[name] * scale).astype(np.float32)
        replaced[f"{prefix}data/{key}"] = state[name].astype("<f4").tobytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as out:
        for info in archive.infolist():
            data = replaced.get(info.filename)
            out.writestr(info, archive.read(info.filename) if data is None else data)
    tmp.replace(dst)
    return state


def forward(state, pixels):
    """pixels: [N, 784] in [0, 1] -> logits [N, 10], all in float64."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    x = (pixels.reshape(-1, 1, SIDE, SIDE).astype(np.float64) - MEAN) / STD
    x = maxpool2(np.maximum(conv2d_same3x3(x, p["features.0.weight"], p["features.0.bias"]), 0))
    x = maxpool2(np.maximum(conv2d_same3x3(x, p["features.3.weight"], p["features.3.bias"]), 0))
    x = x.reshape(x.shape[0], -1)
    x = np.maximum(x @ p["classifier.0.weight"].T + p["classifier.0.bias"], 0)
    return x @ p["classifier.2.weight"].T + p["classifier.2.bias"]


def image_pixels(path):
    img = Image.open(path).convert("L")
    if img.size != (SIDE, SIDE):
        img = img.resize((SIDE, SIDE), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def ascii_pixels(path):
    rows = Path(path).read_text().splitlines()[:SIDE]
    grid = np.zeros((SIDE, SIDE), dtype=np.float32)
    for r, line in enumerate(rows):
        for c, ch in enumerate(line[:SIDE]):
            grid[r, c] = 0.0 if ch == " " else 1.0
    return grid


def build_inputs(samples):
    """(name, expected label or None, [28, 28] float32 pixels), in a fixed order."""
    items = []
    for path in sorted(samples.glob("mnist_test_*_label_*.png")):
        items.append((path.stem, int(path.stem.rsplit("_", 1)[1]), image_pixels(path)))
    for path in sorted(samples.glob("usps_digit_*.png")) + sorted(samples.glob("svhn_digit_*.png")):
        items.append((path.stem, None, image_pixels(path)))
    for path in sorted(samples.glob("ascii_digit_*.txt")):
        items.append((path.stem, None, ascii_pixels(path)))

    rng = np.random.default_rng(20261125)
    seven = next(px for name, _, px in items if name.startswith("mnist_test_0"))
    items.append(("blank", None, np.zeros((SIDE, SIDE), np.float32)))
    items.append(("all_ink", None, np.ones((SIDE, SIDE), np.float32)))
    items.append(("uniform_noise", None, rng.random((SIDE, SIDE), dtype=np.float32)))
    items.append(("seven_shifted", None, np.roll(seven, (2, -3), axis=(0, 1))))
    items.append(("seven_noisy", None, np.clip(seven + rng.normal(0, 0.2, seven.shape), 0, 1).astype(np.float32)))
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    ring = np.abs(np.hypot(yy - 13.5, xx - 13.5) - 8) < 2
    items.append(("ring", None, ring.astype(np.float32)))
    bar = np.zeros((SIDE, SIDE), np.float32)
    bar[4:24, 13:16] = 1.0
    items.append(("vertical_bar", None, bar))
    return items


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pth", required=True, type=Path)
    parser.add_argument("--samples", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--variant-out", type=Path)
    args = parser.parse_args()

    state = load_state_dict(args.pth)
    items = build_inputs(args.samples)
    pixels = np.stack([px.reshape(-1) for _, _, px in items]).astype(np.float32)
    logits = forward(state, pixels)
    variant_logits = None
    if args.variant_out:
        variant = write_variant(args.pth, args.variant_out)
        variant_logits = forward(variant, pixels)

    doc = {
        "model": "mnist",
        "source": {"file": args.pth.name, "sha256": hashlib.sha256(args.pth.read_bytes()).hexdigest()},
        "reference": "numpy float64 forward pass of the PyTorch state dict",
        "items": [
            {
                "name": name,
                "label": label,
                "pixels": [float(v) for v in px],
                "logits": [float(v) for v in row],
            }
            for (name, label, _), px, row in zip(items, pixels, logits)
        ],
    }
    if variant_logits is not None:
        doc["variant"] = {
            "file": args.variant_out.name,
            "sha256": hashlib.sha256(args.variant_out.read_bytes()).hexdigest(),
            "scales": RECALIBRATION,
            "logits": [[float(v) for v in row] for row in variant_logits],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(args.out)
    labelled = [(n, l, int(np.argmax(r))) for (n, l, _), r in zip(items, logits) if l is not None]
    for name, label, got in labelled:
        if label != got:
            raise SystemExit(f"reference misclassifies {name}: expected {label}, got {got}")
    print(f"wrote {len(items)} reference items to {args.out}")


if __name__ == "__main__":
    main()
