"""An independent dense ranking of a BEIR collection, to hold `search-gateway eval`'s against:
onnxruntime + numpy embeddings of the same model directory (its tokenizer.json, prefixes and
max_length from model.toml, mean pooling over the attention mask, L2 normalization), exact cosine
top 100, scored by pytrec_eval.

    .venv/bin/python tests/eval/dense_reference.py MODEL_DIR COLLECTION_DIR

Documents are embedded as the gateway indexes them: the title, a newline, the text.
"""

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytrec_eval
from tokenizers import Tokenizer


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Embedder:
    def __init__(self, model_dir: Path):
        self.config = tomllib.loads((model_dir / "model.toml").read_text())
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.no_truncation()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.pad = self.tok.token_to_id("<pad>") if self.tok.token_to_id("<pad>") is not None else 0

    def embed(self, texts, prefix_key):
        prefix = self.config.get(prefix_key, "")
        limit = self.config["max_length"]
        encoded = [self.tok.encode(prefix + t).ids for t in texts]
        # Truncated keeping the final special token, as the gateway's tokenizer does.
        encoded = [ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:] for ids in encoded]
        out = np.zeros((len(texts), self.session.get_outputs()[0].shape[-1]), np.float32)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            width = max(len(encoded[i]) for i in batch)
            ids = np.full((len(batch), width), self.pad, np.int64)
            mask = np.zeros((len(batch), width), np.int64)
            for row, i in enumerate(batch):
                ids[row, : len(encoded[i])] = encoded[i]
                mask[row, : len(encoded[i])] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            out[batch] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


def main():
    model_dir, collection = Path(sys.argv[1]), Path(sys.argv[2])
    corpus = read_jsonl(collection / "corpus.jsonl")
    queries = read_jsonl(collection / "queries.jsonl")
    qrels = {}
    for line in (collection / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, r = line.split("\t")
        qrels.setdefault(q, {})[d] = int(r)
    queries = [q for q in queries if str(q["_id"]) in qrels]
    embedder = Embedder(model_dir)
    texts = [(d.get("title", "") + "\n" + d["text"]) if d.get("title", "").strip() else d["text"] for d in corpus]
    docs = embedder.embed(texts, "passage_prefix")
    qs = embedder.embed([q["text"] for q in queries], "query_prefix")
    scores = qs @ docs.T
    run = {}
    for i, q in enumerate(queries):
        top = np.argsort(-scores[i], kind="stable")[:100]
        run[str(q["_id"])] = {str(corpus[j]["_id"]): float(100 - rank) for rank, j in enumerate(top)}
    result = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    ndcg = np.mean([m["ndcg_cut_10"] for m in result.values()])
    recall = np.mean([m["recall_100"] for m in result.values()])
    print(json.dumps({"collection": str(collection), "model": model_dir.name, "queries": len(run),
                      "ndcg_10": round(float(ndcg), 4), "recall_100": round(float(recall), 4)}))


if __name__ == "__main__":
    main()
