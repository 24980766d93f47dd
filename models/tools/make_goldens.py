"""Computes golden outputs of the tiny fixture models with the reference stack (onnxruntime + numpy).

    python models/tools/make_goldens.py           # writes models/fixtures/goldens/*.json
    python models/tools/make_goldens.py --check   # recomputes and compares with the committed ones

Each text is run alone (batch of one, no padding), independently of the Rust engine's batching, and
the Rust tests compare their outputs to these within 1e-5. Regenerate only when a fixture changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "models" / "fixtures"
OUT = FIXTURES / "goldens"

LONG = " ".join(["Distributed systems engineer with a taste for search relevance."] * 30)
EMBED_CASES = [
    ("Rust engineer in Berlin", "query"),
    ("Rust engineer in Berlin", "passage"),
    ("Rust engineer in Berlin", "raw"),
    ("Инженер-программист из Москвы", "query"),
    ("東京在住のソフトウェアエンジニアです。", "passage"),
    ("مهندس برمجيات من القاهرة", "raw"),
    ("", "raw"),
    ("", "query"),
    (LONG, "passage"),
]
QUERY = "who knows rust and search?"
RERANK_DOCS = [
    "Rust engineer in Berlin working on search ranking.",
    "Chef in Lisbon, passionate about pastry.",
    "",
    "Инженер-программист из Москвы.",
    LONG,
]


def load(name: str):
    d = FIXTURES / name
    config = tomllib.loads((d / "model.toml").read_text())
    session = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    return config, session, tok


def feed(session, enc) -> dict:
    inputs = {"input_ids": np.array([enc.ids], np.int64),
              "attention_mask": np.array([enc.attention_mask], np.int64)}
    if any(i.name == "token_type_ids" for i in session.get_inputs()):
        inputs["token_type_ids"] = np.array([enc.type_ids], np.int64)
    return inputs


def embeddings() -> dict:
    config, session, tok = load("tiny-e5")
    tok.enable_truncation(max_length=config["max_length"])
    cases = []
    for text, input_type in EMBED_CASES:
        prefix = {"query": config["query_prefix"], "passage": config["passage_prefix"], "raw": ""}[input_type]
        enc = tok.encode(prefix + text)
        hidden = session.run(None, feed(session, enc))[0][0]  # [T, H]
        mask = np.array(enc.attention_mask, np.float32)[:, None]
        mean = (hidden * mask).sum(0) / mask.sum()
        cls = hidden[0]
        cases.append({
            "text": text,
            "input_type": input_type,
            "ids": enc.ids,
            "mean_normalized": (mean / np.linalg.norm(mean)).tolist(),
            "cls_normalized": (cls / np.linalg.norm(cls)).tolist(),
            "mean_raw": mean.tolist(),
        })
    return {"model": "tiny-e5", "max_length": config["max_length"], "cases": cases}


def rerank(name: str) -> dict:
    config, session, tok = load(name)
    # The document is cut, never the query (the query fits in these cases).
    tok.enable_truncation(max_length=config["max_length"], strategy="only_second")
    cases = []
    for doc in RERANK_DOCS:
        enc = tok.encode(QUERY, doc)
        logit = float(session.run(None, feed(session, enc))[0][0][0])
        cases.append({"document": doc, "ids": enc.ids, "type_ids": enc.type_ids, "logit": logit})
    return {"model": name, "query": QUERY, "max_length": config["max_length"], "cases": cases}


def max_difference(a, b) -> float:
    """Largest absolute difference between two JSON trees of the same shape (inf if they differ)."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return max((max_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max((max_difference(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b))
    return 0.0 if a == b else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed goldens instead of writing")
    args = parser.parse_args()
    outputs = {"tiny-e5.json": embeddings(), "tiny-reranker.json": rerank("tiny-reranker"),
               "tiny-bert-reranker.json": rerank("tiny-bert-reranker")}
    if args.check:
        worst = max(max_difference(data, json.loads((OUT / file).read_text())) for file, data in outputs.items())
        print(f"goldens: recomputed, max abs difference to the committed ones {worst:.2e}")
        # ONNX Runtime picks its float32 kernels by CPU (AVX2, AVX-512, ...), so the same graph
        # differs by about 1e-6 from one machine to another (1.25e-06 between two of ours). The
        # Rust tests compare with the goldens within 1e-5; a stale golden (a changed fixture or
        # script) differs by orders of magnitude more.
        sys.exit(0 if worst <= 1e-5 else 1)
    OUT.mkdir(parents=True, exist_ok=True)
    for file, data in outputs.items():
        (OUT / file).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
        print(f"wrote {(OUT / file).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
