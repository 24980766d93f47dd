// The client against the real services (started by tests/tests/typescript_client.rs, which sets
// the URLs and keys below), plus small stand-in servers for what the real ones cannot be made to
// do on demand: answer 429 exactly twice, or never answer.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, describe, test } from "node:test";

import { ServiceError, embedService, fromEnv, rerankService, searchGateway } from "../dist/index.js";

const env = process.env;
for (const name of ["SEARCH_GATEWAY_URL", "EMBED_SERVICE_URL", "RERANK_SERVICE_URL", "SEARCH_GATEWAY_API_KEY"]) {
  assert.ok(env[name], `${name} is not set: run these tests through cargo test -p e2e --test typescript_client`);
}
const { gateway, embed, rerank } = fromEnv(env);
const collection = `ts-${process.pid}`;

/** Resolves to the ServiceError `promise` rejects with. */
async function failure(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("the call succeeded");
}

describe("search-gateway", () => {
  test("upsert, search, read and delete documents", async () => {
    const documents = [
      { id: "rust", text: "Rust engineer who builds search engines", payload: { city: "Berlin" } },
      { id: "bread", text: "Baker of sourdough bread", payload: { city: "Paris" } },
      { id: "ml", text: "Machine learning engineer serving models", payload: { city: "Berlin" } },
    ];
    assert.deepEqual(await gateway.upsert(collection, documents), { collection, upserted: 3, unchanged: 0 });
    const result = await gateway.search({ query: "search engineer", collection, top_k: 3, cache: "bypass" });
    assert.equal(result.hits.length, 3);
    assert.equal(result.rerank, "applied");
    assert.equal(result.cache, "bypass");
    for (const hit of result.hits) {
      assert.equal(typeof hit.vector_score, "number");
      assert.equal(typeof hit.rerank_score, "number");
    }
    assert.ok(result.timings_ms.total >= result.timings_ms.embed);
    const berlin = await gateway.search({
      query: "engineer",
      collection,
      filter: { must: [{ key: "city", match: { value: "Berlin" } }] },
    });
    assert.deepEqual(berlin.hits.map((h) => h.payload.city), ["Berlin", "Berlin"]);
    assert.equal((await gateway.collection(collection)).points_count, 3);
    assert.equal((await gateway.document(collection, "bread")).text, "Baker of sourdough bread");
    const page = await gateway.documents(collection, { limit: 2 });
    assert.equal(page.documents.length, 2);
    const rest = await gateway.documents(collection, { after: page.next, limit: 2 });
    assert.equal(rest.documents.length, 1);
    assert.equal(rest.next, null);
    assert.ok((await gateway.collections()).collections.some((c) => c.name === collection));
    await gateway.setAlias(`${collection}-alias`, collection);
    assert.equal((await gateway.aliases()).aliases[`${collection}-alias`], collection);
    assert.equal((await gateway.collection(`${collection}-alias`)).name, collection);
    assert.deepEqual(await gateway.deleteDocument(collection, "bread"), { collection, id: "bread", deleted: true });
    const gone = await failure(gateway.document(collection, "bread"));
    assert.ok(gone instanceof ServiceError);
    assert.equal(gone.status, 404);
    assert.equal(gone.code, "unknown_document");
    assert.deepEqual(await gateway.deleteCollection(collection), { collection, deleted: true });
    assert.equal((await failure(gateway.collection(collection))).code, "unknown_collection");
  });

  test("bad input comes back as a ServiceError with the service's code", async () => {
    const empty = await failure(gateway.search({ query: "   ", collection }));
    assert.equal(empty.status, 422);
    assert.equal(empty.code, "empty_query");
    const unknown = await failure(gateway.search({ query: "x", collection: "no-such-collection" }));
    assert.equal(unknown.code, "unknown_collection");
    assert.match(unknown.message, /search-gateway: .*unknown_collection, HTTP 404/);
  });

  test("a wrong key is refused with 401 unauthorized", async () => {
    const wrong = searchGateway({ baseUrl: env.SEARCH_GATEWAY_URL, apiKey: "not-the-key" });
    const error = await failure(wrong.search({ query: "x", collection }));
    assert.equal(error.status, 401);
    assert.equal(error.code, "unauthorized");
    const none = searchGateway({ baseUrl: env.SEARCH_GATEWAY_URL });
    assert.equal((await failure(none.collection(collection))).code, "unauthorized");
  });
});

describe("model services", () => {
  test("embed-service: one text, a batch, and the OpenAI route agree", async () => {
    const info = await embed.info();
    const one = await embed.embed("hello", "query");
    assert.equal(one.length, info.dimension);
    const batch = await embed.embedBatch(["hello", "world"], "query");
    assert.equal(batch.length, 2);
    assert.ok(batch[0].every((x, i) => Math.abs(x - one[i]) < 1e-5));
    const openai = await embed.embeddings({ input: ["hello"], input_type: "query" });
    assert.equal(openai.data[0].index, 0);
    assert.equal(openai.usage.total_tokens > 0, true);
  });

  test("rerank-service: results best first, top_n applied", async () => {
    const { results } = await rerank.rerank({ query: "rust", documents: ["a", "b", "c"], top_n: 2, return_documents: true });
    assert.equal(results.length, 2);
    assert.ok(results[0].score >= results[1].score);
    assert.equal(typeof results[0].document, "string");
  });
});

/** A stand-in server answering with `respond(requestNumber, response, request)`; closed after the tests. */
async function standIn(respond) {
  let count = 0;
  const server = createServer((request, response) => {
    request.resume();
    respond(++count, response, request);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  after(() => server.closeAllConnections() || server.close());
  return { url: `http://127.0.0.1:${server.address().port}`, requests: () => count };
}

function overloaded(response, retryAfter = "1") {
  response.writeHead(429, { "content-type": "application/json", "retry-after": retryAfter });
  response.end(JSON.stringify({ error: "the service is overloaded; retry shortly", code: "overloaded" }));
}

const okRerank = (response) => {
  response.writeHead(200, { "content-type": "application/json" });
  response.end(JSON.stringify({ results: [{ index: 0, score: 0.5 }] }));
};

describe("retries, timeouts and aborts", () => {
  test("429 is retried after Retry-After, then succeeds", async () => {
    const server = await standIn((n, response) => (n <= 2 ? overloaded(response) : okRerank(response)));
    const started = Date.now();
    const answer = await rerankService({ baseUrl: server.url }).rerank({ query: "q", documents: ["d"] });
    assert.equal(answer.results[0].score, 0.5);
    assert.equal(server.requests(), 3);
    assert.ok(Date.now() - started >= 1900, "waited Retry-After (1 s) twice");
  });

  test("without retries, or without time left for one, the 429 is the answer", async () => {
    const server = await standIn((_, response) => overloaded(response));
    const noRetries = await failure(rerankService({ baseUrl: server.url, retries: 0 }).rerank({ query: "q", documents: ["d"] }));
    assert.equal(noRetries.code, "overloaded");
    assert.equal(noRetries.status, 429);
    assert.equal(noRetries.retryAfterMs, 1000);
    const before = server.requests();
    const short = await failure(rerankService({ baseUrl: server.url }).rerank({ query: "q", documents: ["d"] }, { timeoutMs: 500 }));
    assert.equal(short.code, "overloaded");
    assert.equal(server.requests() - before, 1, "a 1 s Retry-After does not fit a 500 ms budget");
  });

  test("no answer within the budget is a timeout; the caller's abort is the caller's", async () => {
    const silent = await standIn(() => {});
    const client = embedService({ baseUrl: silent.url, timeoutMs: 300 });
    const timedOut = await failure(client.embed("x"));
    assert.ok(timedOut instanceof ServiceError);
    assert.equal(timedOut.code, "timeout");
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user went away")), 50);
    const aborted = await failure(client.embed("x", undefined, { signal: controller.signal, timeoutMs: 5000 }));
    assert.equal(aborted.message, "user went away");
  });

  test("a closed port is unreachable", async () => {
    const error = await failure(embedService({ baseUrl: "http://127.0.0.1:9" }).embed("x"));
    assert.equal(error.code, "unreachable");
    assert.equal(error.status, 0);
  });
});

describe("trace context", () => {
  const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

  test("the app's traceparent and tracestate go with the call, per call or from a hook", async () => {
    const seen = [];
    const server = await standIn((_, response, request) => {
      seen.push([request.headers.traceparent, request.headers.tracestate]);
      okRerank(response);
    });
    const body = { query: "q", documents: ["d"] };
    await rerankService({ baseUrl: server.url }).rerank(body, { trace: { traceparent: parent, tracestate: "app=1" } });
    const hooked = rerankService({ baseUrl: server.url, traceContext: () => ({ traceparent: parent }) });
    await hooked.rerank(body);
    await rerankService({ baseUrl: server.url }).rerank(body);
    await rerankService({ baseUrl: server.url }).rerank(body, { trace: { traceparent: "not-a-traceparent", tracestate: "x" } });
    assert.deepEqual(seen, [[parent, "app=1"], [parent, undefined], [undefined, undefined], [undefined, undefined]]);
  });

  test("retries carry the same trace context", async () => {
    const seen = [];
    const server = await standIn((n, response, request) => {
      seen.push(request.headers.traceparent);
      n === 1 ? overloaded(response, "0") : okRerank(response);
    });
    await rerankService({ baseUrl: server.url }).rerank({ query: "q", documents: ["d"] }, { trace: { traceparent: parent } });
    assert.deepEqual(seen, [parent, parent]);
  });
});
