"""Builds BERT/XLM-R-shaped transformer encoders as ONNX graphs, from seeded random weights or
from real ones (`weights`, named as this graph names them; see real_models.py).

No deep-learning framework is needed: the graph is written with onnx.helper and the weights with
numpy, so fixtures are reproducible from a seed and the full-size bench models need no download.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is a plain op from opset 17 on.


@dataclass(frozen=True)
class EncoderShape:
    vocab: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    # XLM-R/RoBERTa count positions from padding_idx + 1 and skip padding; BERT counts from 0 and
    # additionally takes token_type_ids.
    xlmr_positions: bool = True
    token_type_ids: bool = False
    pad_id: int = 1
    layer_norm_eps: float = 1e-5


class _Graph:
    def __init__(self, rng: np.random.Generator, std: float = 0.02, weights: dict[str, np.ndarray] | None = None,
                 eps: float = 1e-5):
        self.rng = rng
        self.std = std
        # Real weights by name: every parameter then comes from here, none is made up.
        self.weights = weights
        self.eps = eps
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def param(self, name: str, shape: tuple[int, ...], make) -> str:
        if self.weights is None:
            w = make()
        else:
            w = np.ascontiguousarray(self.weights.pop(name), dtype=np.float32)
            if w.shape != shape:
                raise ValueError(f"{name}: shape {w.shape}, the graph needs {shape}")
        self.inits.append(numpy_helper.from_array(w, name))
        return name

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def weight(self, name: str, shape: tuple[int, ...]) -> str:
        return self.param(name, shape, lambda: self.rng.standard_normal(shape, dtype=np.float32) * np.float32(self.std))

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x: str, prefix: str, n_in: int, n_out: int) -> str:
        w = self.weight(f"{prefix}.weight", (n_in, n_out))
        b = self.param(f"{prefix}.bias", (n_out,), lambda: np.zeros(n_out, dtype=np.float32))
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def layer_norm(self, x: str, prefix: str, n: int) -> str:
        gamma = self.param(f"{prefix}.gamma", (n,), lambda: np.ones(n, dtype=np.float32))
        beta = self.param(f"{prefix}.beta", (n,), lambda: np.zeros(n, dtype=np.float32))
        return self.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=self.eps)

    def gelu(self, x: str) -> str:
        # 0.5 * x * (1 + erf(x / sqrt(2))), the exact GELU that BERT and XLM-R use.
        scaled = self.op("Div", [x, self.const(self.name("sqrt2"), np.array(math.sqrt(2.0), np.float32))])
        erf = self.op("Erf", [scaled])
        one_plus = self.op("Add", [erf, self.const(self.name("one"), np.array(1.0, np.float32))])
        half_x = self.op("Mul", [x, self.const(self.name("half"), np.array(0.5, np.float32))])
        return self.op("Mul", [half_x, one_plus])


def _encoder(g: _Graph, s: EncoderShape) -> str:
    """Adds the embeddings and encoder layers; returns the name of last_hidden_state [B, T, H]."""
    head_dim = s.hidden // s.heads
    words = g.op("Gather", [g.weight("embeddings.word", (s.vocab, s.hidden)), "input_ids"], axis=0)

    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    if s.xlmr_positions:
        # positions = cumsum(ids != pad) * (ids != pad) + pad_id, as RoBERTa derives them from the
        # input ids: padding with any id but the tokenizer's pad id changes the result.
        not_pad = g.op("Not", [g.op("Equal", ["input_ids", g.const("pad_id", np.array(s.pad_id, np.int64))])])
        not_pad = g.op("Cast", [not_pad], to=TensorProto.INT64)
        cum = g.op("CumSum", [not_pad, g.const("axis1", np.array(1, np.int64))])
        masked = g.op("Mul", [cum, not_pad])
        positions = g.op("Add", [masked, g.const("pad_offset", np.array(s.pad_id, np.int64))])
    else:
        ones = g.op("Mul", ["attention_mask", g.const("zero_i", np.array(0, np.int64))])
        ones = g.op("Add", [ones, g.const("one_i", np.array(1, np.int64))])
        cum = g.op("CumSum", [ones, g.const("axis1", np.array(1, np.int64))])
        positions = g.op("Sub", [cum, g.const("one_i2", np.array(1, np.int64))])
    pos = g.op("Gather", [g.weight("embeddings.position", (s.max_positions, s.hidden)), positions], axis=0)
    type_table = g.weight("embeddings.token_type", (2 if s.token_type_ids else 1, s.hidden))
    if s.token_type_ids:
        types = g.op("Gather", [type_table, "token_type_ids"], axis=0)
    else:
        types = g.op("Gather", [type_table, g.const("type0", np.array(0, np.int64))], axis=0)
    x = g.op("Add", [g.op("Add", [words, pos]), types])
    x = g.layer_norm(x, "embeddings.ln", s.hidden)

    # Additive attention bias [B, 1, 1, T]: 0 for real tokens, -1e9 for padding.
    bias = g.op("Mul", [g.op("Sub", [g.const("one_f", np.array(1.0, np.float32)), mask_f]),
                        g.const("neg_big", np.array(-1e9, np.float32))])
    bias = g.op("Unsqueeze", [bias, g.const("axes12", np.array([1, 2], np.int64))])
    split_shape = g.const("split_heads", np.array([0, 0, s.heads, head_dim], np.int64))
    merge_shape = g.const("merge_heads", np.array([0, 0, s.hidden], np.int64))
    scale = g.const("attn_scale", np.array(1.0 / math.sqrt(head_dim), np.float32))

    for i in range(s.layers):
        p = f"layer{i}"

        def heads(t: str) -> str:
            return g.op("Transpose", [g.op("Reshape", [t, split_shape])], perm=[0, 2, 1, 3])

        q = heads(g.linear(x, f"{p}.q", s.hidden, s.hidden))
        k = heads(g.linear(x, f"{p}.k", s.hidden, s.hidden))
        v = heads(g.linear(x, f"{p}.v", s.hidden, s.hidden))
        scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]), scale])
        probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_shape])
        x = g.layer_norm(g.op("Add", [x, g.linear(ctx, f"{p}.o", s.hidden, s.hidden)]), f"{p}.ln1", s.hidden)
        ff = g.linear(g.gelu(g.linear(x, f"{p}.ff1", s.hidden, s.ffn)), f"{p}.ff2", s.ffn, s.hidden)
        x = g.layer_norm(g.op("Add", [x, ff]), f"{p}.ln2", s.hidden)
    return x


def build(shape: EncoderShape, kind: str, seed: int, std: float = 0.02,
          weights: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """kind = "embedding" (output last_hidden_state) or "reranker" (output logits [B, 1]).

    `std` is the weight scale; tiny fixtures use a large one so outputs depend visibly on the input.
    `weights`, when given, supplies every parameter (and must hold no other).
    """
    g = _Graph(np.random.default_rng(seed), std, None if weights is None else dict(weights), shape.layer_norm_eps)
    hidden = _encoder(g, shape)
    if g.weights:
        raise ValueError(f"weights the graph does not use: {sorted(g.weights)[:8]}")
    if kind == "embedding":
        g.nodes.append(helper.make_node("Identity", [hidden], ["last_hidden_state"], name="out"))
        outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                                 ["batch", "sequence", shape.hidden])]
    elif kind == "reranker":
        # RoBERTa/BERT classification head on the first token: dense, tanh, projection to 1 logit.
        cls = g.op("Gather", [hidden, g.const("first", np.array(0, np.int64))], axis=1)
        # A larger weight scale in the head spreads the logits so ordering tests are meaningful.
        g.std = 0.5 / math.sqrt(shape.hidden) * 4
        dense = g.op("Tanh", [g.linear(cls, "classifier.dense", shape.hidden, shape.hidden)])
        logits = g.linear(dense, "classifier.out", shape.hidden, 1)
        g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="out"))
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])]
    else:
        raise ValueError(kind)

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    if shape.token_type_ids:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "sequence"]))
    graph = helper.make_graph(g.nodes, f"{kind}_encoder", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="semsearch-fixtures")
    model.ir_version = 8
    return model
