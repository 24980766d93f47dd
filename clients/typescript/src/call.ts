// One call to a service: a time budget, the caller's AbortSignal, bounded retries on 429/503 that
// honour Retry-After within the budget, and errors that carry the service's `code`.

import { setTimeout as sleep } from "node:timers/promises";

/** Settings shared by every call to one service. */
export interface ServiceOptions {
  /** The service's base URL, e.g. `http://search-gateway:8080` (server side: from env). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>` when the service runs with API_KEY. */
  apiKey?: string;
  /** Milliseconds a call may take, retries included [default: 10000]. */
  timeoutMs?: number;
  /** Retries of a call answered 429 or 503 [default: 2]. */
  retries?: number;
  /** A fetch implementation [default: globalThis.fetch]. */
  fetch?: (input: Request) => Promise<Response>;
  /**
   * The W3C trace context of the app's current span, asked for on every call, so that the
   * services' spans join the app's trace. With OpenTelemetry in the app:
   * `() => { const carrier = {}; propagation.inject(context.active(), carrier); return carrier; }`.
   */
  traceContext?: () => TraceContext | undefined;
}

/** W3C trace-context headers: `traceparent` and, if any, `tracestate`. */
export interface TraceContext {
  traceparent?: string;
  tracestate?: string;
}

/** Per-call settings; they win over the service's. */
export interface CallOptions {
  /** Aborts the call (and any wait before a retry). */
  signal?: AbortSignal;
  timeoutMs?: number;
  retries?: number;
  /** This call's trace context; wins over `ServiceOptions.traceContext`. */
  trace?: TraceContext;
}

/** What each attempt of a call is sent with. */
export interface Attempt {
  signal: AbortSignal;
  headers: Record<string, string>;
}

/**
 * A call that did not succeed. `code` is the service's own (`empty_query`, `overloaded`,
 * `unknown_collection`, `unauthorized`, ...), or `timeout` / `unreachable` when no answer came.
 */
export class ServiceError extends Error {
  constructor(
    readonly service: string,
    /** The HTTP status, or 0 when there was no answer. */
    readonly status: number,
    readonly code: string,
    message: string,
    /** The Retry-After the service asked for, in milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(`${service}: ${message} (${code}${status ? `, HTTP ${status}` : ""})`);
    this.name = "ServiceError";
  }
}

/** What openapi-fetch resolves to. */
type Outcome<T> = { data?: T; error?: unknown; response: Response };

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_RETRIES = 2;
/** The longest wait before a retry, whatever Retry-After says. */
const MAX_PAUSE_MS = 5_000;

/** Runs `send` under `options`' budget and retry policy; returns the answer's body. */
export async function call<T>(
  service: string,
  defaults: ServiceOptions,
  options: CallOptions | undefined,
  send: (attempt: Attempt) => Promise<Outcome<T>>,
): Promise<T> {
  const timeoutMs = options?.timeoutMs ?? defaults.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const retries = options?.retries ?? defaults.retries ?? DEFAULT_RETRIES;
  const deadline = Date.now() + timeoutMs;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options?.signal ? either(options.signal, timeout) : timeout;
  for (let attempt = 0; ; attempt++) {
    let outcome: Outcome<T>;
    try {
      outcome = await send({ signal, headers: traceHeaders(options?.trace ?? defaults.traceContext?.()) });
    } catch (cause) {
      throw noAnswer(service, cause, options?.signal, timeout, timeoutMs);
    }
    const { response } = outcome;
    if (response.ok) return outcome.data as T;
    const error = toServiceError(service, response, outcome.error);
    const pause = Math.min(error.retryAfterMs ?? 100 * 2 ** attempt, MAX_PAUSE_MS);
    const retryable = response.status === 429 || response.status === 503;
    if (!retryable || attempt >= retries || Date.now() + pause >= deadline) throw error;
    try {
      await sleep(pause, undefined, { signal });
    } catch (cause) {
      throw noAnswer(service, cause, options?.signal, timeout, timeoutMs);
    }
  }
}

/** Aborts when either signal does (AbortSignal.any, which Node 18 lacks). */
function either(a: AbortSignal, b: AbortSignal): AbortSignal {
  const controller = new AbortController();
  for (const signal of [a, b]) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

/** The caller's abort stays the caller's (its reason is rethrown); our own timeout is a ServiceError. */
function noAnswer(
  service: string,
  cause: unknown,
  callerSignal: AbortSignal | undefined,
  timeout: AbortSignal,
  timeoutMs: number,
): unknown {
  if (callerSignal?.aborted) return callerSignal.reason;
  if (timeout.aborted) return new ServiceError(service, 0, "timeout", `no answer within ${timeoutMs} ms`);
  const detail = cause instanceof Error ? String((cause as { cause?: unknown }).cause ?? cause.message) : String(cause);
  return new ServiceError(service, 0, "unreachable", detail);
}

function toServiceError(service: string, response: Response, body: unknown): ServiceError {
  const retryAfter = Number(response.headers.get("retry-after"));
  const retryAfterMs = response.headers.has("retry-after") && Number.isFinite(retryAfter) ? retryAfter * 1000 : undefined;
  if (body && typeof body === "object" && "code" in body && "error" in body) {
    const { code, error } = body as { code: unknown; error: unknown };
    return new ServiceError(service, response.status, String(code), String(error), retryAfterMs);
  }
  return new ServiceError(service, response.status, "http_error", response.statusText || "no JSON error body", retryAfterMs);
}

/** The trace context as headers; malformed values are left out rather than sent. */
export function traceHeaders(trace: TraceContext | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (trace?.traceparent && /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(trace.traceparent)) {
    out.traceparent = trace.traceparent;
    if (trace.tracestate) out.tracestate = trace.tracestate;
  }
  return out;
}

/** The headers every request to a service carries. */
export function headers(options: ServiceOptions): Record<string, string> {
  if (!options.apiKey) return {};
  if (typeof (globalThis as { window?: unknown }).window !== "undefined") {
    // A key in browser code is a key published: this client is for route handlers and server actions.
    throw new Error("@weavink/semsearch-client with an API key must run on the server, not in the browser");
  }
  return { Authorization: `Bearer ${options.apiKey}` };
}
