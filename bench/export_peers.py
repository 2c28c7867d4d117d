"""Export ccexam's MNIST weights for the peer runtimes of the benchmark, without torch:

- ``mnist.onnx``: the same network as an ONNX graph built with ``onnx.helper`` (opset 17):
  input ``pixels`` [N, 1, 28, 28] in [0, 1], MNIST normalisation inside (as in brasa),
  Conv-Relu-MaxPool ×2, Flatten, Gemm-Relu-Gemm, output ``logits`` [N, 10];
- ``mnist-tfjs.bin`` + ``mnist-tfjs.json``: the same weights laid out for TensorFlow.js
  (NHWC): conv kernels as HWIO, the first dense layer's rows reordered from PyTorch's
  C,H,W flattening to H,W,C, dense kernels as [in, out].

Reads the ``.pth`` with the reference script's numpy-only loader.

Usage: python export_peers.py --pth mnist.pth --out DIR
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reference"))
from mnist_reference import MEAN, STD, load_state_dict  # noqa: E402


def onnx_model(state):
    f32 = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
    inits = [
        numpy_helper.from_array(np.array(MEAN, np.float32), "mean"),
        numpy_helper.from_array(np.array(STD, np.float32), "std"),
        numpy_helper.from_array(f32["features.0.weight"], "conv1.w"),
        numpy_helper.from_array(f32["features.0.bias"], "conv1.b"),
        numpy_helper.from_array(f32["features.3.weight"], "conv2.w"),
        numpy_helper.from_array(f32["features.3.bias"], "conv2.b"),
        numpy_helper.from_array(f32["classifier.0.weight"], "fc1.w"),
        numpy_helper.from_array(f32["classifier.0.bias"], "fc1.b"),
        numpy_helper.from_array(f32["classifier.2.weight"], "fc2.w"),
        numpy_helper.from_array(f32["classifier.2.bias"], "fc2.b"),
    ]
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [
        helper.make_node("Sub", ["pixels", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["x0"]),
        helper.make_node("Conv", ["x0", "conv1.w", "conv1.b"], ["c1"], **conv),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], **pool),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], **conv),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], **pool),
        helper.make_node("Flatten", ["p2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc1.w", "fc1.b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "fc2.w", "fc2.b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "ccexam_mnist",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="brasa-bench")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def tfjs_weights(state):
    f32 = {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
    fc1 = f32["classifier.0.weight"].reshape(128, 64, 7, 7).transpose(0, 2, 3, 1).reshape(128, 3136)
    return {
        "conv1.kernel": f32["features.0.weight"].transpose(2, 3, 1, 0),
        "conv1.bias": f32["features.0.bias"],
        "conv2.kernel": f32["features.3.weight"].transpose(2, 3, 1, 0),
        "conv2.bias": f32["features.3.bias"],
        "dense1.kernel": fc1.T,
        "dense1.bias": f32["classifier.0.bias"],
        "dense2.kernel": f32["classifier.2.weight"].T,
        "dense2.bias": f32["classifier.2.bias"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pth", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    state = load_state_dict(args.pth)

    onnx.save(onnx_model(state), str(args.out / "mnist.onnx"))

    manifest, blobs, offset = [], [], 0
    for name, array in tfjs_weights(state).items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        manifest.append({"name": name, "shape": list(array.shape), "offset": offset, "length": array.size})
        blobs.append(data)
        offset += array.size
    (args.out / "mnist-tfjs.bin").write_bytes(b"".join(blobs))
    (args.out / "mnist-tfjs.json").write_text(json.dumps({"dtype": "float32", "tensors": manifest}))
    print(f"wrote mnist.onnx and mnist-tfjs.{{json,bin}} to {args.out}")


if __name__ == "__main__":
    main()
