"""The ImageNet-sized benchmark model: SqueezeNet 1.0 from the ONNX project's ``light`` models.

``light_squeezenet.onnx`` (onnx==1.22.0 wheel, ``backend/test/data/light``) is the real
SqueezeNet graph (opset 9: Conv, Relu, MaxPool, Concat, Dropout, GlobalAveragePool,
Softmax) whose 52 weight tensors are ``ConstantOfShape`` nodes or initializers filled with 0.02, which makes
every class equally likely. This script keeps the graph node for node and replaces those
constants with seeded He-normal initializers, so outputs differ per input and a wrong kernel
shows. It also makes the batch dimension dynamic (``N``) for batch-32 runs. Writes:

- ``squeezenet.onnx``: the graph brasa imports (burn-onnx, at build time) and
  onnxruntime-web runs: input ``data_0`` [N, 3, 224, 224], output ``softmaxout_1``
  [N, 1000, 1, 1];
- ``squeezenet-reference.json``: two seeded inputs and their outputs from onnx's own
  reference evaluator (numpy), the independent computation every runtime is checked against;
- ``squeezenet-tfjs.json`` + ``.bin``: the graph's nodes and the same weights laid out for
  TensorFlow.js (NHWC; conv kernels as HWIO), for the benchmark's TF.js runner.

Usage: python export_squeezenet.py --out DIR
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

LIGHT = Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"
SEED = 20261125
INPUT, OUTPUT, SOFTMAX_INPUT = "data_0", "softmaxout_1", "r65"


def weight_shapes(graph):
    """Shape of every weight: an initializer's own, or the int64 shape its ConstantOfShape reads."""
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    shapes = {name: list(a.shape) for name, a in arrays.items() if not name.endswith("__SHAPE")}
    for node in graph.node:
        if node.op_type == "ConstantOfShape":
            shapes[node.output[0]] = arrays[node.input[0]].tolist()
    used = {name for node in graph.node if node.op_type != "ConstantOfShape" for name in node.input}
    return {name: shape for name, shape in sorted(shapes.items()) if name in used}


def squeezenet():
    light = onnx.load(str(LIGHT))
    shapes = weight_shapes(light.graph)
    rng = np.random.default_rng(SEED)
    inits = []
    for name, shape in shapes.items():
        if name.endswith("_w_0"):
            fan_in = int(np.prod(shape[1:]))
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        else:
            value = rng.normal(0.0, 0.05, shape)
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
    nodes = [n for n in light.graph.node if n.op_type != "ConstantOfShape"]
    graph = helper.make_graph(
        nodes,
        "squeezenet",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 1000, 1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="brasa-bench")
    model.ir_version = 4
    onnx.checker.check_model(model, full_check=True)
    return model


def reference(model):
    rng = np.random.default_rng(SEED + 1)
    # Inputs like a normalised image: mostly within a few units of zero.
    inputs = rng.normal(0.0, 1.0, (2, 3, 224, 224)).astype(np.float32)
    # The Softmax is taken here: onnx's evaluator applies opset 13's last-axis rule to this
    # opset 9 node (whose inputs are coerced to [N, 1000], so every output would be 1.0).
    (pooled,) = ReferenceEvaluator(model).run([SOFTMAX_INPUT], {INPUT: inputs})
    logits = pooled.reshape(2, 1000).astype(np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    outputs = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return {
        "source": "onnx.reference.ReferenceEvaluator (numpy), onnx " + onnx.__version__,
        "input_shape": [3, 224, 224],
        "classes": 1000,
        "inputs": [x.ravel().tolist() for x in inputs],
        "outputs": [y.tolist() for y in outputs],
        "top1": [int(np.argmax(y)) for y in outputs],
    }


def tfjs(model, out):
    """Nodes (op, inputs, outputs, attributes) and weights in TF.js layout."""
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: list(a.ints) if a.ints else (a.i if a.type == onnx.AttributeProto.INT else a.f)
                 for a in node.attribute}
        nodes.append({"op": node.op_type, "inputs": list(node.input), "outputs": list(node.output), "attrs": attrs})
    tensors, blobs, offset = [], [], 0
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.ndim == 4:
            array = array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        tensors.append({"name": init.name, "shape": list(array.shape), "offset": offset, "length": array.size})
        blobs.append(data)
        offset += array.size
    (out / "squeezenet-tfjs.bin").write_bytes(b"".join(blobs))
    graph = {"input": INPUT, "output": OUTPUT, "nodes": nodes, "dtype": "float32", "tensors": tensors}
    (out / "squeezenet-tfjs.json").write_text(json.dumps(graph))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = squeezenet()
    onnx.save(model, str(args.out / "squeezenet.onnx"))
    (args.out / "squeezenet-reference.json").write_text(json.dumps(reference(model)))
    tfjs(model, args.out)
    print(f"wrote squeezenet.onnx, squeezenet-reference.json and squeezenet-tfjs.{{json,bin}} to {args.out}")


if __name__ == "__main__":
    main()
