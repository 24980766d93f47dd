"""Fusions of a dense and a sparse ranking computed outside the gateway, scored by pytrec_eval.

Two uses: trying fusions on real rankings before building one into the engine (seconds per
fusion instead of minutes of searching), and an independent check of the engine's own: the RRF
written here from its definition must reproduce the gateway's hybrid ranking.

    python tests/eval/fuse_offline.py --qrels QRELS --per-query RUN.jsonl [--per-query MORE.jsonl]
        [--fusion rrf:60:1 --fusion gated:5:0.2:20 ...] [--check-engine]

RUN.jsonl is `search-gateway eval --retrieval dense,sparse[,hybrid] --per-query RUN.jsonl`: one
line per query and configuration, with its ranking. Fusions (W is the sparse ranking's weight,
the dense one weighs 1):
    rrf:K:W          Qdrant's weighted RRF: a document at position p (from 0) of a ranking of
                     weight w adds 1 / ((p + 1) / w + K - 1), i.e. 1 / (K + p) at w = 1; a
                     weight stretches the positions rather than scaling the scores
    gated:K:W:N      the same, but the sparse ranking only counts for documents in dense's top N
                     (BM25 reorders dense's candidates and brings none of its own)
"""

import argparse
import json
import statistics

import pytrec_eval


def read_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            cols = line.rstrip("\n").split("\t") if "\t" in line else line.split()
            if n == 0 and not cols[-1].lstrip("-").isdigit():
                continue  # the BEIR header
            query, doc, grade = (cols[0], cols[1], cols[2]) if len(cols) == 3 else (cols[0], cols[2], cols[3])
            qrels.setdefault(query, {})[doc] = int(grade)
    return qrels


def read_runs(paths):
    """{retrieval label: {query: ranking}} from --per-query files, and the same of the rankings'
    scores (None where a file has none)."""
    runs, scores = {}, {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                c = row["configuration"]
                label = c["retrieval"] if c.get("fusion") is None else f"{c['retrieval']} {json.dumps(c['fusion'])}"
                runs.setdefault(label, {})[row["query"]] = row["ranking"]
                scores.setdefault(label, {})[row["query"]] = row.get("scores")
    return runs, scores


def position_score(position, k, weight):
    return 0.0 if weight <= 0 else 1.0 / ((position + 1) / weight + k - 1)


def tie_groups(ranking, scores):
    """[(start, end)] of the runs of equal scores along `ranking` (each position its own run
    without scores)."""
    if not scores:
        return [(p, p + 1) for p in range(len(ranking))]
    groups, start = [], 0
    for end in range(1, len(ranking) + 1):
        if end == len(ranking) or scores[end] != scores[start]:
            groups.append((start, end))
            start = end
    return groups


def rrf_bounds(rankings, k):
    """{document: (lowest, highest) fused score} of the weighted (ranking, scores, weight)s. The
    documents of equal score in a ranking could have been given its positions in any order (the
    rankers do not order ties alike), so each may have the position score of any of them."""
    bounds = {}
    for ranking, scores, weight in rankings:
        for start, end in tie_groups(ranking, scores):
            lo, hi = position_score(end - 1, k, weight), position_score(start, k, weight)
            for doc in ranking[start:end]:
                a, b = bounds.get(doc, (0.0, 0.0))
                bounds[doc] = (a + lo, b + hi)
    return bounds


def rrf_scores(dense, sparse, k, w, gate=None):
    """{document: fused score} of the two rankings, ties aside; with `gate`, the sparse ranking
    only counts for documents in dense's top `gate`."""
    allowed = set(dense[:gate]) if gate else None
    sparse = [d for d in sparse if allowed is None or d in allowed]
    return {doc: lo for doc, (lo, _) in rrf_bounds([(dense, None, 1.0), (sparse, None, w)], k).items()}


def fuse(dense, sparse, k, w, gate=None, depth=100):
    score = rrf_scores(dense, sparse, k, w, gate)
    return sorted(score, key=lambda d: -score[d])[:depth]


def check_engine(runs, scores):
    """Each hybrid RRF run of the gateway against the RRF written here: no document the engine
    ranked lower or left out may have a fused score surely above one it ranked higher, and none it
    ranked may be missing from both rankings. Without ties in the dense and sparse rankings a
    score is one number and this is exactly "the engine's ranking is this RRF's"; ties in them
    (and in the fused scores) may be ordered either way. Returns the queries that differ, per
    run."""
    differing = {}
    for label, run in runs.items():
        fusion = json.loads(label[len("hybrid "):]) if label.startswith("hybrid ") else None
        if fusion is None or fusion["method"] != "rrf":
            continue
        bad = 0
        for q, ranking in run.items():
            inputs = [
                (runs["dense"][q], scores["dense"][q], 1.0),
                (runs["sparse"].get(q, []), scores["sparse"].get(q), fusion["sparse_weight"]),
            ]
            bounds = rrf_bounds(inputs, fusion["k"])
            ranked = set(ranking)
            # The best lowest score among the documents after each position, and those left out.
            floor = max((lo for d, (lo, _) in bounds.items() if d not in ranked), default=-1.0)
            for d in reversed(ranking):
                if d not in bounds or bounds[d][1] < floor - 1e-6:
                    bad += 1
                    break
                floor = max(floor, bounds[d][0])
        differing[label] = (bad, len(run))
    return differing


def figures(qrels, runs):
    """nDCG@10 and recall@50 over the queries, and each query's figures."""
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.50"})
    scored = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in runs.items()}
    per_query = evaluator.evaluate(scored)
    mean = {m: statistics.fmean(f[m] for f in per_query.values()) for m in ("ndcg_cut_10", "recall_50")}
    return mean, per_query


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qrels", required=True)
    p.add_argument("--per-query", action="append", required=True)
    p.add_argument("--fusion", action="append", default=[])
    p.add_argument("--check-engine", action="store_true", help="hold the runs' hybrid RRF to this one; exit 1 if any differs")
    a = p.parse_args()
    qrels = read_qrels(a.qrels)
    runs, scores = read_runs(a.per_query)
    if a.check_engine:
        differing = check_engine(runs, scores)
        for label, (bad, total) in differing.items():
            print(f"{label}: {total - bad} of {total} queries fused as this RRF fuses them")
        if not differing or any(bad for bad, _ in differing.values()):
            raise SystemExit(1)
        return
    dense, sparse = runs["dense"], runs["sparse"]
    base, base_q = figures(qrels, dense)
    print(f"{'ranking':<32} {'nDCG@10':>8} {'vs dense':>9} {'R@50':>7} {'queries better/worse':>21}")
    for label, run in runs.items():
        m = figures(qrels, run)[0]
        print(f"{label:<32} {m['ndcg_cut_10']:8.4f} {m['ndcg_cut_10'] - base['ndcg_cut_10']:+9.4f} {m['recall_50']:7.4f}")
    for spec in a.fusion:
        kind, *nums = spec.split(":")
        k, w = int(nums[0]), float(nums[1])
        gate = int(nums[2]) if kind == "gated" else None
        fused = {q: fuse(dense[q], sparse.get(q, []), k, w, gate) for q in dense}
        m, per_q = figures(qrels, fused)
        better = sum(per_q[q]["ndcg_cut_10"] > base_q[q]["ndcg_cut_10"] + 1e-12 for q in per_q)
        worse = sum(per_q[q]["ndcg_cut_10"] < base_q[q]["ndcg_cut_10"] - 1e-12 for q in per_q)
        value = m["ndcg_cut_10"]
        print(f"{spec:<32} {value:8.4f} {value - base['ndcg_cut_10']:+9.4f} {m['recall_50']:7.4f} {better:>10}/{worse:<10}")


if __name__ == "__main__":
    main()
