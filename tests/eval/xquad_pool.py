"""The cross-lingual pool of XQuAD-R: the five language folders' corpora and queries together, each
question's answers being its answer sentence in every language.

XQuAD-R's question ids are parallel across languages (`en-56beb...` and `de-56beb...` are the same
question), its sentence ids are not (each language splits paragraphs into sentences its own way), so
a question's answers are read from each language's own judgments of its parallel question.

    python tests/eval/xquad_pool.py ../shared/data/ir/xquad-r OUT_DIR [--languages en,de,es,zh,ru]

writes OUT_DIR/corpus.jsonl, OUT_DIR/queries.jsonl and OUT_DIR/qrels/test.tsv (BEIR layout).
"""

import argparse
import collections
import json
import pathlib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("xquad_dir", type=pathlib.Path)
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--languages", default="en,de,es,zh,ru")
    args = parser.parse_args()
    languages = args.languages.split(",")
    answers = collections.defaultdict(set)  # question (without its language) -> sentence ids
    queries, corpus = [], []
    for language in languages:
        folder = args.xquad_dir / language
        corpus.extend((folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines())
        queries.extend((folder / "queries.jsonl").read_text(encoding="utf-8").splitlines())
        rows = (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
        for row in rows:
            query, document, score = row.split("\t")
            prefix = f"{language}-"
            assert query.startswith(prefix), f"{folder}: query id {query!r} does not start with {prefix!r}"
            if int(score) > 0:
                answers[query[len(prefix):]].add(document)
    out = args.out_dir
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    (out / "corpus.jsonl").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    (out / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    judged = 0
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for line in queries:
            query = json.loads(line)["_id"]
            for document in sorted(answers[query.split("-", 1)[1]]):
                qrels.write(f"{query}\t{document}\t1\n")
                judged += 1
    print(f"{len(corpus)} sentences, {len(queries)} questions, {judged} judgments in {out}")


if __name__ == "__main__":
    main()
