/**
 * The upstream client for an OpenAI-compatible GPU origin (vLLM's OpenAI server, or `edgelm serve`
 * standing in for it): POST /v1/completions and /v1/chat/completions, always streamed upstream so
 * one code path serves streamed and whole responses and the first-token timeout applies to both.
 *
 * `openOrigin` resolves only once the first token (or a finish) has arrived: everything that can
 * go wrong before that is an OriginFailure, which the router turns into a fallback. After that the
 * events come from an async iterator that throws OriginStreamError on a stall, an upstream error
 * event or a body that ends without [DONE]; the router sends that as an error event, no [DONE].
 *
 * The origin's credential (ORIGIN_API_KEY) goes only into the upstream Authorization header; any
 * upstream text that reaches a client or a log passes through `scrub` first.
 */
import { SseReader, SseTimeout } from "../util";
import type { OriginConfig } from "./config";

export type Endpoint = "completions" | "chat";

/** Failed before the first token: the router may fall back. `kind` is a short code for headers, logs and metrics. */
export class OriginFailure extends Error {
  override name = "OriginFailure";
  constructor(
    readonly kind: string,
    message: string,
    /** Whether this says the origin is unhealthy (counts toward the breaker); a 429 does not. */
    readonly unhealthy = true,
  ) {
    super(message);
  }
}

/** The origin refused the request itself (4xx): its answer goes to the client, no fallback. */
export class OriginRejected extends Error {
  override name = "OriginRejected";
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null,
  ) {
    super(message);
  }
}

/** Failed after the first token. */
export class OriginStreamError extends Error {
  override name = "OriginStreamError";
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

export interface OriginStream {
  /** Upstream chunk objects (parsed JSON), the first token's among the first; ends after [DONE]. */
  events: AsyncGenerator<Record<string, unknown>, void, undefined>;
  /** Stops the upstream request now (the client went away). */
  cancel(): void;
}

export const ORIGIN_PATHS: Record<Endpoint, string> = { completions: "/v1/completions", chat: "/v1/chat/completions" };

/** Replaces the secret wherever an upstream string might carry it (an origin echoing headers, a proxy's error page). */
export function scrub(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join("[redacted]") : text;
}

export async function openOrigin(cfg: OriginConfig, endpoint: Endpoint, body: Record<string, unknown>, signal: AbortSignal, fetchImpl: typeof fetch = fetch): Promise<OriginStream> {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  const detach = () => signal.removeEventListener("abort", onAbort);
  const headers: Record<string, string> = { "content-type": "application/json", accept: "text/event-stream" };
  if (cfg.apiKey) headers.authorization = `Bearer ${cfg.apiKey}`;

  let res: Response;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  try {
    timer = setTimeout(() => {
      timedOut = true;
      ctl.abort(new Error("connect timeout"));
    }, cfg.connectTimeoutMs);
    res = await fetchImpl(cfg.url.replace(/\/+$/, "") + ORIGIN_PATHS[endpoint], { method: "POST", headers, body: JSON.stringify(body), signal: ctl.signal });
  } catch (err) {
    detach();
    if (signal.aborted) throw err;
    if (timedOut) throw new OriginFailure("connect_timeout", `no response from the origin within ${cfg.connectTimeoutMs} ms`);
    throw new OriginFailure("connect", `cannot reach the origin: ${scrub((err as Error).message, cfg.apiKey)}`);
  } finally {
    clearTimeout(timer);
  }

  try {
    await checkStatus(res, cfg.apiKey);
  } catch (err) {
    detach();
    await res.body?.cancel().catch(() => {});
    throw err;
  }
  // Keep-alive comments restart the idle clock (they are proof of life), though they are no token.
  const reader = new SseReader(res.body!, { comments: true, keepUnterminated: true });
  const close = async () => {
    detach();
    ctl.abort();
    await reader.cancel();
  };

  // Up to the first token: anything wrong here is still a failure the client never sees.
  const buffered: Record<string, unknown>[] = [];
  const deadline = Date.now() + cfg.firstTokenTimeoutMs;
  try {
    for (;;) {
      const item = await reader.next(deadline - Date.now());
      if (item === undefined) throw new OriginFailure("ended_early", "the origin closed the stream before the first token");
      if (item.type === "comment") continue;
      if (item.data === "[DONE]") throw new OriginFailure("ended_early", "the origin finished the stream without a token or finish_reason");
      const chunk = parseChunk(item.data, cfg.apiKey, (kind, msg) => new OriginFailure(kind, msg));
      buffered.push(chunk);
      if (isFirstToken(chunk)) break;
    }
  } catch (err) {
    await close();
    if (signal.aborted) throw signal.reason ?? err;
    if (err instanceof SseTimeout) throw new OriginFailure("first_token_timeout", `no token from the origin within ${cfg.firstTokenTimeoutMs} ms`);
    if (err instanceof OriginFailure) throw err;
    throw new OriginFailure("stream", `reading the origin's stream failed: ${scrub((err as Error).message, cfg.apiKey)}`);
  }

  async function* events(): AsyncGenerator<Record<string, unknown>, void, undefined> {
    try {
      yield* buffered;
      for (;;) {
        let item;
        try {
          item = await reader.next(cfg.idleTimeoutMs);
        } catch (err) {
          if (err instanceof SseTimeout) throw new OriginStreamError("stall", `the GPU origin stalled: no data for ${cfg.idleTimeoutMs} ms after the stream started`);
          if (signal.aborted) throw err;
          throw new OriginStreamError("stream", `the GPU origin's stream broke: ${scrub((err as Error).message, cfg.apiKey)}`);
        }
        if (item === undefined) throw new OriginStreamError("truncated", "the GPU origin's stream ended without [DONE]");
        if (item.type === "comment") continue;
        if (item.data === "[DONE]") return;
        yield parseChunk(item.data, cfg.apiKey, (kind, msg) => new OriginStreamError(kind, msg));
      }
    } finally {
      await close();
    }
  }
  return { events: events(), cancel: () => void close() };
}

/** 2xx SSE goes on; 4xx the origin meant for the client is OriginRejected; the rest is an OriginFailure. */
async function checkStatus(res: Response, secret: string | undefined): Promise<void> {
  const type = res.headers.get("content-type") ?? "";
  if (res.ok) {
    if (!type.startsWith("text/event-stream")) throw new OriginFailure("protocol", `the origin answered ${res.status} with ${type || "no content type"}, not an event stream`);
    return;
  }
  const s = res.status;
  // Our credential was refused: a deployment problem, never the client's (its key was fine with us).
  if (s === 401 || s === 403) throw new OriginFailure("auth", `the origin refused our credentials (${s}): check the ORIGIN_API_KEY secret against vLLM's --api-key`);
  if (s === 429) throw new OriginFailure("http_429", "the origin is overloaded (429)", false);
  if (s >= 400 && s < 500 && s !== 408) {
    const { message, param } = upstreamError(await res.text().catch(() => ""), secret);
    throw new OriginRejected(s, message ?? `the origin refused the request (${s})`, param);
  }
  throw new OriginFailure(`http_${s}`, `the origin answered ${s}`);
}

/** vLLM's error bodies: nested {"error":{message,param,code:int}} since 0.10.1, flat {"object":"error",message} before. */
export function upstreamError(text: string, secret: string | undefined): { message?: string; param: string | null } {
  try {
    const j = JSON.parse(text) as Record<string, any>;
    const e = j && typeof j.error === "object" && j.error !== null ? j.error : j;
    const message = typeof e.message === "string" ? scrub(e.message, secret) : undefined;
    return { message, param: typeof e.param === "string" ? e.param : null };
  } catch {
    return { param: null };
  }
}

function parseChunk<E extends Error>(data: string, secret: string | undefined, fail: (kind: string, message: string) => E): Record<string, unknown> {
  let j: unknown;
  try {
    j = JSON.parse(data);
  } catch {
    throw fail("protocol", "the origin sent an event that is not JSON");
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) throw fail("protocol", "the origin sent an event that is not a JSON object");
  const o = j as Record<string, unknown>;
  if (o.error !== undefined || o.object === "error") {
    const { message } = upstreamError(data, secret);
    throw fail("upstream_error", `the GPU origin failed: ${message ?? "an error event without a message"}`);
  }
  return o;
}

/**
 * A chunk that commits the answer: text or content, a piece of a tool call, or a finish. Chat's
 * opening role-only chunk does not. A tool call counts: an answer that is only calls has no content
 * before its finish, and waiting for that would hold the whole answer to the first-token timeout.
 */
export function isFirstToken(chunk: Record<string, unknown>): boolean {
  const choices = chunk.choices;
  if (!Array.isArray(choices)) return false;
  return choices.some((c) => {
    if (typeof c !== "object" || c === null) return false;
    if (c.finish_reason != null) return true;
    if (typeof c.text === "string" && c.text !== "") return true;
    if (Array.isArray(c.delta?.tool_calls) && c.delta.tool_calls.length > 0) return true;
    return typeof c.delta?.content === "string" && c.delta.content !== "";
  });
}
