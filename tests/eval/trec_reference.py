"""The reference for search-gateway eval's metrics: pytrec_eval (trec_eval's own C code).

Reads {"qrels": {query: {doc: relevance}}, "runs": {query: [doc, ...best first]}} on stdin and
prints {query: {"ndcg_10", "mrr_10", "recall_10", "recall_20", "recall_30", "recall_50", "recall_100", "p_10"}}.
MRR@10 is
trec_eval's recip_rank of the ranking cut to its first 10 documents.
"""

import json
import sys

import pytrec_eval


def scored(ranking):
    # Strictly decreasing scores: trec_eval orders by score, so the ranking is kept as given.
    return {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}


def main():
    data = json.load(sys.stdin)
    qrels, runs = data["qrels"], data["runs"]
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "P.10", "recall.10,20,30,50,100"})
    cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    a = full.evaluate({q: scored(r) for q, r in runs.items()})
    b = cut.evaluate({q: scored(r[:10]) for q, r in runs.items()})
    out = {
        q: {
            "ndcg_10": m["ndcg_cut_10"],
            "mrr_10": b[q]["recip_rank"],
            "recall_10": m["recall_10"],
            "recall_20": m["recall_20"],
            "recall_30": m["recall_30"],
            "recall_50": m["recall_50"],
            "recall_100": m["recall_100"],
            "p_10": m["P_10"],
        }
        for q, m in a.items()
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
