// Typed clients for search-gateway, embed-service and rerank-service. The types come from the
// services' OpenAPI documents (src/generated/, `npm run generate`); every call has a time budget,
// takes an AbortSignal, retries 429/503 as Retry-After says, and fails with a ServiceError that
// carries the service's `code`. Server side only: URLs and keys come from the server's env.

import createClient from "openapi-fetch";

import { type CallOptions, type ServiceOptions, call, headers } from "./call.js";
import type { components as EmbedComponents, paths as EmbedPaths } from "./generated/embed-service.js";
import type { components as RerankComponents, paths as RerankPaths } from "./generated/rerank-service.js";
import type { components as GatewayComponents, paths as GatewayPaths } from "./generated/search-gateway.js";

export { type CallOptions, type ServiceOptions, type TraceContext, ServiceError } from "./call.js";

type Gateway = GatewayComponents["schemas"];
export type SearchRequest = Gateway["SearchRequest"];
export type SearchResponse = Gateway["SearchResponse"];
export type Hit = Gateway["Hit"];
export type Document = Gateway["Document"];
export type UpsertResponse = Gateway["UpsertResponse"];
export type CollectionInfo = Gateway["CollectionInfo"];
export type DocumentResponse = Gateway["DocumentResponse"];
export type DeleteResponse = Gateway["DeleteResponse"];
export type EmbedRequest = EmbedComponents["schemas"]["EmbedRequest"];
export type EmbeddingsRequest = EmbedComponents["schemas"]["EmbeddingsRequest"];
export type EmbedInfo = EmbedComponents["schemas"]["Info"];
export type RerankRequest = RerankComponents["schemas"]["RerankRequest"];
export type RerankResponse = RerankComponents["schemas"]["RerankResponse"];
export type RerankInfo = RerankComponents["schemas"]["Info"];
export type InputType = EmbedComponents["schemas"]["InputType"];

function client<Paths extends {}>(options: ServiceOptions) {
  return createClient<Paths>({ baseUrl: options.baseUrl.replace(/\/+$/, ""), headers: headers(options), fetch: options.fetch });
}

/** search-gateway: search, and write and read a collection's documents. */
export function searchGateway(options: ServiceOptions) {
  const api = client<GatewayPaths>(options);
  const run = <T>(send: Parameters<typeof call<T>>[3], o?: CallOptions) => call("search-gateway", options, o, send);
  const collection = (name: string) => ({ path: { name } });
  const document = (name: string, id: string) => ({ path: { name, id } });
  return {
    search: (request: SearchRequest, o?: CallOptions) => run((attempt) => api.POST("/search", { body: request, ...attempt }), o),
    upsert: (name: string, documents: Document[], o?: CallOptions) =>
      run((attempt) => api.PUT("/collections/{name}/documents", { params: collection(name), body: { documents }, ...attempt }), o),
    collection: (name: string, o?: CallOptions) =>
      run((attempt) => api.GET("/collections/{name}", { params: collection(name), ...attempt }), o),
    document: (name: string, id: string, o?: CallOptions) =>
      run((attempt) => api.GET("/collections/{name}/documents/{id}", { params: document(name, id), ...attempt }), o),
    deleteDocument: (name: string, id: string, o?: CallOptions) =>
      run((attempt) => api.DELETE("/collections/{name}/documents/{id}", { params: document(name, id), ...attempt }), o),
    /** Every collection with its size. */
    collections: (o?: CallOptions) => run((attempt) => api.GET("/collections", { ...attempt }), o),
    /** A page of a collection's documents; pass the answer's `next` as `after` for the next one. */
    documents: (name: string, page?: { after?: string; limit?: number }, o?: CallOptions) =>
      run((attempt) => api.GET("/collections/{name}/documents", { params: { ...collection(name), query: page }, ...attempt }), o),
    deleteCollection: (name: string, o?: CallOptions) =>
      run((attempt) => api.DELETE("/collections/{name}", { params: collection(name), ...attempt }), o),
    aliases: (o?: CallOptions) => run((attempt) => api.GET("/aliases", { ...attempt }), o),
    /** Points `alias` at `collection` in one step. */
    setAlias: (alias: string, target: string, o?: CallOptions) =>
      run((attempt) => api.PUT("/aliases/{alias}", { params: { path: { alias } }, body: { collection: target }, ...attempt }), o),
    ready: (o?: CallOptions) => run((attempt) => api.GET("/ready", { ...attempt }), o),
  };
}

/** embed-service: E5 embeddings. */
export function embedService(options: ServiceOptions) {
  const api = client<EmbedPaths>(options);
  const run = <T>(send: Parameters<typeof call<T>>[3], o?: CallOptions) => call("embed-service", options, o, send);
  return {
    /** One text's vector. */
    embed: async (text: string, inputType?: InputType, o?: CallOptions) =>
      (await run((attempt) => api.POST("/embed", { body: { text, input_type: inputType }, ...attempt }), o)).embedding,
    /** Several texts' vectors, in order. */
    embedBatch: async (texts: string[], inputType?: InputType, o?: CallOptions) =>
      (await run((attempt) => api.POST("/embed/batch", { body: { texts, input_type: inputType }, ...attempt }), o)).embeddings,
    /** The OpenAI-compatible route, whole. */
    embeddings: (request: EmbeddingsRequest, o?: CallOptions) =>
      run((attempt) => api.POST("/v1/embeddings", { body: request, ...attempt }), o),
    info: (o?: CallOptions) => run((attempt) => api.GET("/info", { ...attempt }), o),
    ready: (o?: CallOptions) => run((attempt) => api.GET("/ready", { ...attempt }), o),
  };
}

/** rerank-service: cross-encoder scores, best first. */
export function rerankService(options: ServiceOptions) {
  const api = client<RerankPaths>(options);
  const run = <T>(send: Parameters<typeof call<T>>[3], o?: CallOptions) => call("rerank-service", options, o, send);
  return {
    rerank: (request: RerankRequest, o?: CallOptions) => run((attempt) => api.POST("/rerank", { body: request, ...attempt }), o),
    info: (o?: CallOptions) => run((attempt) => api.GET("/info", { ...attempt }), o),
    ready: (o?: CallOptions) => run((attempt) => api.GET("/ready", { ...attempt }), o),
  };
}

/** The three clients from the server's environment: SEARCH_GATEWAY_URL / SEARCH_GATEWAY_API_KEY,
 * EMBED_SERVICE_URL / EMBED_SERVICE_API_KEY, RERANK_SERVICE_URL / RERANK_SERVICE_API_KEY
 * (a client whose URL is unset is `undefined`). */
export function fromEnv(env: Record<string, string | undefined> = process.env, timeoutMs?: number) {
  const options = (prefix: string) => {
    const baseUrl = env[`${prefix}_URL`];
    return baseUrl ? { baseUrl, apiKey: env[`${prefix}_API_KEY`] || undefined, timeoutMs } : undefined;
  };
  const [gateway, embed, rerank] = ["SEARCH_GATEWAY", "EMBED_SERVICE", "RERANK_SERVICE"].map(options);
  return {
    gateway: gateway && searchGateway(gateway),
    embed: embed && embedService(embed),
    rerank: rerank && rerankService(rerank),
  };
}
