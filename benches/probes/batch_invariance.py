"""Does a cross-encoder score a pair the same whatever it is batched with, and what do batches buy?

    .venv/bin/python benches/probes/batch_invariance.py models/bench/bge-reranker-base-shaped-int8

ONNX Runtime alone (no service): 12 (query, document) pairs scored one at a time, twice, then
all in one padded batch and in padded batches of two; prints whether the logits are the same bits.
Then 50 pairs of --min-words..--max-words words: one after another with 2 intra-op threads at
batch 1 and in length-sorted batches of 2/4/8, and two single-threaded sessions at batch 1 side by
side (two runs in flight), two rounds. The evidence behind shared/src/exact.rs.
"""

import argparse
import threading
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

WORDS = ("engineer search rust python data machine learning berlin paris team lead senior product "
         "design manager cloud infrastructure kubernetes").split()


def session(model: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(f"{model}/model.onnx", options, providers=["CPUExecutionProvider"])


def run(s: ort.InferenceSession, batch, pad: int) -> np.ndarray:
    width = max(len(e.ids) for e in batch)
    ids = np.full((len(batch), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, e in enumerate(batch):
        ids[i, :len(e.ids)] = e.ids
        mask[i, :len(e.ids)] = 1
        types[i, :len(e.ids)] = e.type_ids
    feed = {"input_ids": ids, "attention_mask": mask}
    if any(i.name == "token_type_ids" for i in s.get_inputs()):
        feed["token_type_ids"] = types
    return s.run(None, feed)[0][:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--min-words", type=int, default=150)
    parser.add_argument("--max-words", type=int, default=450)
    args = parser.parse_args()
    tok = Tokenizer.from_file(f"{args.model}/tokenizer.json")
    tok.enable_truncation(512)
    pad = tok.token_to_id("<pad>")
    pad = 0 if pad is None else pad
    rng = np.random.default_rng(0)

    pairs = [tok.encode("senior rust engineer", " ".join(rng.choice(WORDS, size=rng.integers(20, 250))))
             for _ in range(12)]
    s = session(args.model, 2)
    alone = np.array([run(s, [e], pad)[0] for e in pairs])
    again = np.array([run(s, [e], pad)[0] for e in pairs])
    together = run(s, pairs, pad)
    twos = np.concatenate([run(s, pairs[i:i + 2], pad) for i in range(0, len(pairs), 2)])
    print(f"lengths {[len(e.ids) for e in pairs]}")
    print(f"alone, twice: same bits {np.array_equal(alone, again)}")
    for name, batched in (("one batch of 12", together), ("batches of 2", twos)):
        print(f"{name} vs alone: same bits {np.array_equal(alone, batched)}, "
              f"max |difference| {np.abs(alone - batched).max():.6f}")

    docs = [" ".join(rng.choice(WORDS, size=rng.integers(args.min_words, args.max_words))) for _ in range(50)]
    encoded = [tok.encode("senior rust engineer in berlin", d) for d in docs]
    print(f"\n50 pairs, mean {np.mean([len(e.ids) for e in encoded]):.0f} tokens; seconds for all 50:")
    by_length = sorted(encoded, key=lambda e: len(e.ids))
    run(s, by_length[:4], pad)
    for rep in range(2):
        for size in (1, 2, 4, 8):
            t = time.perf_counter()
            for i in range(0, 50, size):
                run(s, by_length[i:i + size], pad)
            print(f"round {rep + 1}: 2 threads, sorted batches of {size}: {time.perf_counter() - t:.2f}")
        a, b = session(args.model, 1), session(args.model, 1)
        run(a, encoded[:1], pad)
        run(b, encoded[:1], pad)
        t = time.perf_counter()
        workers = [threading.Thread(target=lambda s, items: [run(s, [e], pad) for e in items], args=(x, encoded[k::2]))
                   for k, x in enumerate((a, b))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        print(f"round {rep + 1}: two 1-thread sessions side by side, one pair each run: {time.perf_counter() - t:.2f}")


if __name__ == "__main__":
    main()
