"""The official Cohere Python SDK against rerank-service's /v1/rerank and /v2/rerank.

Run by tests/tests/sdks.rs with RERANK_URL (the live service) and EXPECTED (the service's own
/rerank order for QUERY over DOCUMENTS, as JSON): every SDK call must see that order.
"""

import json
import os

import cohere

URL = os.environ["RERANK_URL"]
EXPECTED = json.loads(os.environ["EXPECTED"])
QUERY = "who writes rust"
DOCUMENTS = [
    "Rust engineer in Berlin, building search engines",
    "Pastry chef in Lyon",
    "Data scientist in Paris, machine learning",
    "Backend developer (Go, Rust) in Madrid",
]
checks = 0


def check(condition, what):
    global checks
    assert condition, what
    checks += 1


def ordered(results):
    check(all(0.0 <= r.relevance_score <= 1.0 for r in results), "scores are probabilities")
    scores = [r.relevance_score for r in results]
    check(scores == sorted(scores, reverse=True), f"best first: {scores}")
    return [r.index for r in results]


v1 = cohere.Client(api_key="no-key-needed", base_url=URL, max_retries=0)
answer = v1.rerank(query=QUERY, documents=DOCUMENTS)
check(ordered(answer.results) == EXPECTED, f"v1 order {[r.index for r in answer.results]} != {EXPECTED}")
check(answer.meta.api_version.version == "1" and answer.id, f"v1 meta and id: {answer}")
check(all(r.document is None for r in answer.results), "no documents unless asked for")

answer = v1.rerank(
    query=QUERY, documents=[{"text": d} for d in DOCUMENTS], top_n=2, return_documents=True, rank_fields=["text"]
)
check(ordered(answer.results) == EXPECTED[:2], "v1 with {text} objects and top_n")
check([r.document.text for r in answer.results] == [DOCUMENTS[i] for i in EXPECTED[:2]], "v1 documents")

v2 = cohere.ClientV2(api_key="no-key-needed", base_url=URL, max_retries=0)
answer = v2.rerank(model="bge-reranker-base", query=QUERY, documents=DOCUMENTS, top_n=3)
check(ordered(answer.results) == EXPECTED[:3], f"v2 order and top_n: {answer.results}")
check(answer.meta.api_version.version == "2", f"v2 meta: {answer.meta}")
answer = v2.rerank(model="bge-reranker-base", query=QUERY, documents=DOCUMENTS, max_tokens_per_doc=2)
check(len(ordered(answer.results)) == len(DOCUMENTS), "v2 with max_tokens_per_doc")

try:
    v1.rerank(query=QUERY, documents=[{"text": d, "title": d} for d in DOCUMENTS], rank_fields=["title"])
    raise AssertionError("rank_fields other than text were accepted")
except cohere.errors.UnprocessableEntityError as error:
    check("rank_fields" in error.body["error"], f"rank_fields: {error.body}")

for name, call in [
    ("v1", lambda: v1.rerank(query=" ", documents=DOCUMENTS)),
    ("v2", lambda: v2.rerank(model="m", query="", documents=DOCUMENTS)),
]:
    try:
        call()
        raise AssertionError(f"{name}: an empty query was accepted")
    except cohere.errors.UnprocessableEntityError as error:
        check(error.status_code == 422 and error.body["code"] == "empty_query", f"{name}: {error.body}")

print(f"cohere {cohere.__version__}: {checks} passed, 0 failed")
