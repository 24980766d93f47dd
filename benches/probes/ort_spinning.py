"""Probe behind the gateway's `--intra-op-spinning` default (BENCHMARKS.md, search-gateway).

Two ONNX Runtime sessions sharing the cores, as in the gateway's embedded mode: does one short
query on session A cost more right after a batch on session B than back to back on A alone? And
what does an idle pause cost a single session? Run once with spinning on, once off:

    .venv/bin/python benches/probes/ort_spinning.py models/bench/e5-large-shaped-int8 1
    .venv/bin/python benches/probes/ort_spinning.py models/bench/e5-large-shaped-int8 0
"""

import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

model_dir, spin = sys.argv[1], sys.argv[2]


def session():
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    return ort.InferenceSession(f"{model_dir}/model.onnx", options, providers=["CPUExecutionProvider"])


def feed(tokens, rows):
    ids = np.tile(np.array([[0, *range(100, 100 + tokens - 2), 2]], dtype=np.int64), (rows, 1))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def ms(sess, inputs):
    start = time.perf_counter()
    sess.run(None, inputs)
    return (time.perf_counter() - start) * 1000


a, b = session(), session()
query, batch = feed(20, 1), feed(60, 16)
for _ in range(3):
    a.run(None, query)
    b.run(None, batch)

for round_ in range(3):
    back_to_back = [ms(a, query) for _ in range(10)]
    after_other, after_own, after_idle = [], [], []
    for _ in range(10):
        ms(b, batch)
        after_other.append(ms(a, query))
    for _ in range(10):
        ms(a, batch)
        after_own.append(ms(a, query))
    for _ in range(10):
        time.sleep(0.3)
        after_idle.append(ms(a, query))
    print(
        f"spinning={spin} round {round_}: query p50 back to back {statistics.median(back_to_back):.1f} ms;"
        f" right after a batch on the other session {statistics.median(after_other):.1f} ms;"
        f" after a batch on its own session {statistics.median(after_own):.1f} ms;"
        f" after 300 ms idle {statistics.median(after_idle):.1f} ms"
    )
