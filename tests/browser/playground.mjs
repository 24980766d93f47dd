// Drives Debian's chromium, headless, through the gateway's playground page: enter the API key,
// upsert documents pasted as JSONL, search (by keyboard), check the hits, timings, cache and
// rerank status are shown, that a bad filter gets a clear error, and that the console stayed
// clean. Saves a desktop and a phone screenshot. Run by tests/tests/playground.rs, which starts
// the gateway and sets GATEWAY_URL, API_KEY, CHROMIUM and SCREENSHOTS.

import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";

const { GATEWAY_URL, API_KEY, CHROMIUM = "/usr/bin/chromium", SCREENSHOTS } = process.env;
assert.ok(GATEWAY_URL && API_KEY && SCREENSHOTS, "GATEWAY_URL, API_KEY and SCREENSHOTS must be set");

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Root in CI: chromium's sandbox needs an unprivileged user.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const problems = [];
// The status a deliberate failure of this step answers with (chromium logs it as a console error).
let expectedStatus = 401;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error" && message.type() !== "warn") return;
    // Before the key is entered, the first /collections call is answered 401 by design.
    const expected = expectedStatus !== null && message.text().includes(`status of ${expectedStatus}`);
    if (!expected) problems.push(`console ${message.type()}: ${message.text()} (${message.location().url ?? ""})`);
  });

  await page.goto(GATEWAY_URL, { waitUntil: "networkidle0" });
  assert.equal(await page.title(), "search-gateway playground");

  // Keys are on: the page asks for one.
  await page.waitForSelector("#key-form:not([hidden])", { timeout: 10_000 });
  await page.type("#key", API_KEY);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => getComputedStyle(document.querySelector("#key-form")).display === "none");
  expectedStatus = null;

  // Upsert four documents pasted as JSONL.
  const documents = [
    { id: "ada", text: "Rust engineer building search engines in Berlin", payload: { city: "Berlin", years: 9 } },
    { id: "ben", text: "Pastry chef and sourdough baker in Lyon", payload: { city: "Lyon", years: 4 } },
    { id: "cho", text: "Machine learning engineer serving embedding models", payload: { city: "Berlin", years: 6 } },
    { id: "dev", text: "Site reliability engineer for Qdrant clusters", payload: { city: "Paris", years: 7 } },
  ];
  await page.type("#upsert-collection", "playground");
  await page.$eval("#jsonl", (el, text) => { el.value = text; }, documents.map((d) => JSON.stringify(d)).join("\n"));
  await page.click("#upsert-button");
  await page.waitForFunction(() => document.querySelector("#upsert-status").textContent.startsWith("Done"), { timeout: 30_000 });
  assert.equal(await page.$eval("#upsert-status", (el) => el.textContent), "Done: 4 upserted, 0 unchanged, into playground.");
  assert.equal(await page.$eval("#upsert-progress", (el) => el.value), 4);
  await page.waitForFunction(() => document.querySelector("#collection").value === "playground");
  assert.match(await page.$eval("#stats", (el) => el.textContent), /^4 documents · 32 dims · cosine · qdrant-edge$/);

  // Search with the keyboard: type, then Enter.
  await page.click("#query");
  await page.keyboard.type("engineer who builds search");
  await page.$eval("#top-k", (el) => { el.value = "3"; });
  await page.keyboard.press("Enter");
  await page.waitForSelector("#hits li", { timeout: 30_000 });
  const hits = await page.$$eval("#hits li", (items) => items.map((li) => li.textContent));
  assert.equal(hits.length, 3, hits.join("\n"));
  for (const hit of hits) {
    assert.match(hit, /score \d\.\d{4}/);
    assert.match(hit, /vector -?\d\.\d{4}/);
    assert.match(hit, /rerank -?\d\.\d{4}/);
    assert.match(hit, /vector #\d → #\d/);
    assert.match(hit, /dense #\d · sparse( #\d|: not among its \d+ hits)/, "each hit's rank in the dense and the sparse ranking");
    assert.ok(documents.some((d) => hit.includes(d.text)), `the hit shows its document text: ${hit}`);
  }
  assert.equal(await page.$eval("#rerank-status", (el) => el.textContent), "rerank: applied");
  assert.equal(await page.$eval("#cache-status", (el) => el.textContent), "cache: miss");
  const stages = await page.$$eval(".bar span", (spans) => spans.map((s) => s.textContent));
  assert.ok(stages.some((s) => s.startsWith("embed")) && stages.some((s) => s.startsWith("rerank")), stages.join(", "));
  assert.match(await page.$eval(".legend", (el) => el.textContent), /total: \d+\.\d\d ms/);
  await page.screenshot({ path: `${SCREENSHOTS}/playground-desktop.png`, fullPage: true });

  // The same search again is a cache hit.
  await page.click("#search-button");
  await page.waitForFunction(() => document.querySelector("#cache-status")?.textContent === "cache: hit", { timeout: 10_000 });

  // The retrieval picker: a sparse search lists BM25's ranking, so each hit's sparse rank is its
  // place (without reranking); a hybrid one says it ran.
  await page.click("#rerank");
  await page.select("#retrieval", "sparse");
  await page.click("#search-button");
  await page.waitForFunction(() => document.querySelector("#retrieval-status")?.textContent === "retrieval: sparse", { timeout: 10_000 });
  const ranks = await page.$$eval("#hits li .ranks", (spans) => spans.map((s) => s.textContent));
  assert.ok(ranks.length > 0 && ranks.every((r, i) => r.endsWith(`sparse #${i + 1}`)), ranks.join("\n"));
  await page.select("#retrieval", "hybrid");
  await page.click("#search-button");
  await page.waitForFunction(() => document.querySelector("#retrieval-status")?.textContent === "retrieval: hybrid", { timeout: 10_000 });
  await page.select("#retrieval", "");
  await page.click("#rerank");

  // A filter: only Berlin; then a broken one gets a clear error and no request.
  await page.$eval("#filter", (el) => { el.value = '{"must": [{"key": "city", "match": {"value": "Berlin"}}]}'; });
  await page.click("#search-button");
  await page.waitForFunction(() => [...document.querySelectorAll("#hits li pre")].every((p) => p.textContent.includes("Berlin"))
    && document.querySelectorAll("#hits li").length === 2, { timeout: 10_000 });
  await page.$eval("#filter", (el) => { el.value = '{"must": [}'; });
  await page.click("#search-button");
  await page.waitForFunction(() => document.querySelector("#search-error").textContent.startsWith("The filter is not valid JSON"));
  // A filter the gateway refuses shows its message and code.
  expectedStatus = 422;
  await page.$eval("#filter", (el) => { el.value = '{"must": [{"nonsense": 1}]}'; });
  await page.click("#search-button");
  await page.waitForFunction(() => document.querySelector("#search-error").textContent.includes("(invalid_filter)"), { timeout: 10_000 });
  expectedStatus = null;
  await page.$eval("#filter", (el) => { el.value = ""; });
  await page.click("#search-button");
  await page.waitForFunction(() => document.querySelector("#search-error").textContent === "" && document.querySelectorAll("#hits li").length === 3);

  // A phone's width (isMobile would reload the page and lose the results): nothing wider than it.
  await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await page.screenshot({ path: `${SCREENSHOTS}/playground-phone.png`, fullPage: true });
} finally {
  await browser.close();
}
assert.deepEqual(problems, [], `the console was not clean:\n${problems.join("\n")}`);
console.log("playground: key, upsert of 4 documents, search, cache hit, hybrid, filters and both viewports checked; console clean");
