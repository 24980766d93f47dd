"""A running embed-service against an independent onnxruntime + numpy run of the same model directory.

Embeds texts from the test collections (several languages, queries and passages) through the
service's /embed/batch and through dense_reference.Embedder (the model's tokenizer.json read by
the `tokenizers` package, onnxruntime, mean pooling, L2 normalization), and prints the largest
absolute difference of any component and the smallest cosine. Exits 1 when the largest difference
exceeds --max-abs-diff.

    .venv/bin/python tests/eval/embed_agreement.py MODEL_DIR SERVICE_URL [--per-language 12]
"""

import argparse
import json
import sys
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from dense_reference import Embedder, read_jsonl  # noqa: E402

IR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ir"


def texts(per_language):
    picked = []
    for folder in ["xquad-r/en", "xquad-r/de", "xquad-r/es", "xquad-r/zh", "xquad-r/ru", "cranfield"]:
        queries = read_jsonl(IR / folder / "queries.jsonl")[:per_language]
        passages = read_jsonl(IR / folder / "corpus.jsonl")[:per_language]
        picked += [("query", q["text"]) for q in queries] + [("passage", p["text"]) for p in passages]
    return picked


def service(url, batch, input_type):
    body = json.dumps({"texts": batch, "input_type": input_type}).encode()
    request = urllib.request.Request(url.rstrip("/") + "/embed/batch", body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return np.array(json.load(response)["embeddings"], np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("url")
    p.add_argument("--per-language", type=int, default=12)
    p.add_argument("--max-abs-diff", type=float, default=1e-4)
    a = p.parse_args()
    embedder = Embedder(a.model_dir)
    picked = texts(a.per_language)
    worst, cosines, count = 0.0, [], 0
    for kind in ["query", "passage"]:
        batch = [t for k, t in picked if k == kind]
        ours = service(a.url, batch, kind)
        theirs = embedder.embed(batch, f"{kind}_prefix")
        worst = max(worst, float(np.abs(ours - theirs).max()))
        cosines += list((ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1))
        count += len(batch)
    print(json.dumps({"model": a.model_dir.name, "texts": count, "max_abs_diff": worst,
                      "min_cosine": float(min(cosines))}))
    sys.exit(0 if worst <= a.max_abs_diff else 1)


if __name__ == "__main__":
    main()
