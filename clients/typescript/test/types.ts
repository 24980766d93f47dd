// Compile-time checks of the generated types (`npm test` runs tsc on this file, never node).
import { type SearchResponse, searchGateway } from "../src/index.js";

const gateway = searchGateway({ baseUrl: "http://127.0.0.1:8080" });

export async function typed(): Promise<number> {
  const result: SearchResponse = await gateway.search({ query: "rust", top_k: 5, cache: "bypass" });
  const first: string | undefined = result.hits[0]?.id;
  // @ts-expect-error `cache` is "use" | "bypass" | "refresh"
  await gateway.search({ query: "rust", cache: "sometimes" });
  // @ts-expect-error `query` is required
  await gateway.search({ top_k: 5 });
  // @ts-expect-error documents need an `id`
  await gateway.upsert("profiles", [{ text: "no id" }]);
  return (first?.length ?? 0) + result.timings_ms.total;
}
