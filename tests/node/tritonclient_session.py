"""Triton's own Python client (tritonclient.http) against a brasa KServe endpoint.

    python tritonclient_session.py HOST:PORT INPUTS.json

INPUTS.json: {"mnist": [[784 pixels], ...], "two_heads": {"features": {dims, data}, "token_ids": {dims, data}}}.
Prints one JSON object with what the client got back (configurations, statistics before and
after, inference outputs, the status and message of each refused call); the Node test
(tritonclient.test.mjs) judges it.
"""

import json
import sys
import time

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def refused(call):
    """The status and message of a call the server refused (None if it answered)."""
    try:
        call()
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}
    return None


def main():
    url, inputs_path = sys.argv[1], sys.argv[2]
    with open(inputs_path) as f:
        data = json.load(f)
    # concurrency: async_infer sends from that many connections at once (the dynamic batcher
    # may then join requests).
    client = httpclient.InferenceServerClient(url, concurrency=8)
    out = {"live": client.is_server_live(), "ready": client.is_server_ready()}
    out["server"] = client.get_server_metadata()
    out["config"] = {name: client.get_model_config(name) for name in ("mnist", "two-heads")}
    out["config_versioned"] = client.get_model_config("mnist", "1.0.0")
    out["config_unknown_model"] = refused(lambda: client.get_model_config("resnet"))
    out["config_unknown_version"] = refused(lambda: client.get_model_config("mnist", "9.9.9"))
    out["stats_before"] = client.get_inference_statistics("mnist")

    pixels = np.array(data["mnist"], dtype=np.float32).reshape(-1, 1, 28, 28)

    def mnist_request(x, binary=True, datatype="FP32"):
        tensor = httpclient.InferInput("pixels", list(x.shape), datatype)
        tensor.set_data_from_numpy(x, binary_data=binary)
        return {"inputs": [tensor], "outputs": [httpclient.InferRequestedOutput("logits", binary_data=binary)]}

    started_ms = time.time() * 1000
    # One request of every image (binary both ways, tritonclient's default), one in JSON,
    # then every image as its own request, concurrently.
    out["mnist_batch"] = client.infer("mnist", **mnist_request(pixels)).as_numpy("logits").tolist()
    out["mnist_json"] = client.infer("mnist", **mnist_request(pixels[:1], binary=False)).as_numpy("logits").tolist()
    pending = [client.async_infer("mnist", **mnist_request(pixels[k : k + 1])) for k in range(len(pixels))]
    out["mnist_singles"] = [p.get_result().as_numpy("logits").tolist() for p in pending]
    # Two refusals: an NHWC image, and integers for a float input.
    out["bad_shape"] = refused(lambda: client.infer("mnist", **mnist_request(pixels[:1].reshape(1, 28, 28, 1))))
    out["bad_datatype"] = refused(
        lambda: client.infer("mnist", **mnist_request(np.zeros((1, 1, 28, 28), dtype=np.int32), datatype="INT32"))
    )
    out["sent"] = {"ok_requests": 2 + len(pixels), "ok_rows": 2 * len(pixels) + 1, "failed": 2}
    out["stats_after"] = client.get_inference_statistics("mnist")
    out["stats_versioned"] = client.get_inference_statistics("mnist", "1.0.0")
    out["stats_unknown_version"] = refused(lambda: client.get_inference_statistics("mnist", "9.9.9"))
    out["stats_unknown_model"] = refused(lambda: client.get_inference_statistics("resnet"))

    case = data["two_heads"]
    features = np.array(case["features"]["data"], dtype=np.float32).reshape(case["features"]["dims"])
    token_ids = np.array(case["token_ids"]["data"], dtype=np.int64).reshape(case["token_ids"]["dims"])
    tensors = [
        httpclient.InferInput("features", list(features.shape), "FP32"),
        httpclient.InferInput("token_ids", list(token_ids.shape), "INT64"),
    ]
    tensors[0].set_data_from_numpy(features)
    tensors[1].set_data_from_numpy(token_ids)
    result = client.infer("two-heads", tensors)
    out["two_heads"] = {"pooled": result.as_numpy("pooled").tolist(), "class_id": result.as_numpy("class_id").tolist()}
    out["stats_all"] = client.get_inference_statistics()
    out["window_ms"] = [started_ms, time.time() * 1000]
    client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
