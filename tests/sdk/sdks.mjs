// The official npm SDKs a Next.js app uses, against the live services (run by tests/tests/sdks.rs
// with EMBED_URL, RERANK_URL and EXPECTED, the rerank-service's own /rerank order for QUERY over
// DOCUMENTS): `openai` against /v1/embeddings, `cohere-ai` against /v1/rerank and /v2/rerank.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { Cohere, CohereClient, CohereClientV2 } from "cohere-ai";
import OpenAI from "openai";

const { EMBED_URL, RERANK_URL } = process.env;
const EXPECTED = JSON.parse(process.env.EXPECTED);
const QUERY = "who writes rust";
const DOCUMENTS = [
  "Rust engineer in Berlin, building search engines",
  "Pastry chef in Lyon",
  "Data scientist in Paris, machine learning",
  "Backend developer (Go, Rust) in Madrid",
];
let checks = 0;
const check = (condition, what) => {
  assert.ok(condition, what);
  checks += 1;
};
const close = (a, b) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= 1e-6);

async function rejects(call, type, what) {
  try {
    await call();
  } catch (error) {
    check(error instanceof type, `${what}: ${error}`);
    return error;
  }
  assert.fail(`${what} was accepted`);
}

// openai: the reference is the service's own /embed/batch with the same input type.
const texts = ["Rust engineer in Berlin", "Pâtissier à Lyon"];
const native = await fetch(`${EMBED_URL}/embed/batch`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ texts, input_type: "raw" }),
}).then((r) => r.json());
const openai = new OpenAI({ apiKey: "no-key-needed", baseURL: `${EMBED_URL}/v1`, maxRetries: 0 });
const floats = await openai.embeddings.create({ model: "m", input: texts, encoding_format: "float", input_type: "raw" });
check(floats.data.every((d, i) => d.index === i && close(d.embedding, native.embeddings[i])), "openai: floats, in order");
const decoded = await openai.embeddings.create({ model: "m", input: texts, input_type: "raw" });
check(decoded.data.every((d, i) => close(Array.from(d.embedding), native.embeddings[i])), "openai: its default, base64 decoded");
const one = await openai.embeddings.create({ model: "m", input: texts[0], encoding_format: "float", input_type: "raw" });
check(one.data.length === 1 && close(one.data[0].embedding, native.embeddings[0]), "openai: one text");
const wrong = await rejects(
  () => openai.embeddings.create({ model: "m", input: "x", dimensions: 3 }),
  OpenAI.UnprocessableEntityError,
  "openai: a dimension the model does not have",
);
check(wrong.status === 422, `openai: status ${wrong.status}`);

// cohere-ai: every call must see the service's own order.
const order = (results) => results.map((r) => r.index);
const v1 = new CohereClient({ token: "no-key-needed", baseUrl: RERANK_URL });
const answer1 = await v1.rerank({ query: QUERY, documents: DOCUMENTS, topN: 2, returnDocuments: true });
check(JSON.stringify(order(answer1.results)) === JSON.stringify(EXPECTED.slice(0, 2)), "cohere-ai v1: order and topN");
check(answer1.results.every((r) => r.document.text === DOCUMENTS[r.index]), "cohere-ai v1: documents");
check(answer1.results.every((r) => r.relevanceScore >= 0 && r.relevanceScore <= 1), "cohere-ai v1: scores");
check(answer1.meta.apiVersion.version === "1", "cohere-ai v1: meta");
const v2 = new CohereClientV2({ token: "no-key-needed", baseUrl: RERANK_URL });
const answer2 = await v2.rerank({ model: "bge-reranker-base", query: QUERY, documents: DOCUMENTS, maxTokensPerDoc: 64 });
check(JSON.stringify(order(answer2.results)) === JSON.stringify(EXPECTED), "cohere-ai v2: order");
check(answer2.meta.apiVersion.version === "2", "cohere-ai v2: meta");
for (const [name, call] of [
  ["v1", () => v1.rerank({ query: " ", documents: DOCUMENTS })],
  ["v2", () => v2.rerank({ model: "m", query: "", documents: DOCUMENTS })],
]) {
  const error = await rejects(call, Cohere.UnprocessableEntityError, `cohere-ai ${name}: an empty query`);
  check(error.statusCode === 422 && error.body.code === "empty_query", `cohere-ai ${name}: ${JSON.stringify(error.body)}`);
}

const pinned = JSON.parse(readFileSync(new URL("./package.json", import.meta.url))).devDependencies;
console.log(`openai ${pinned.openai}, cohere-ai ${pinned["cohere-ai"]} (npm): ${checks} passed, 0 failed`);
