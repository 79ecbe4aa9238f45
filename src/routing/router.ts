/**
 * Executes the policy for one generation request: validate, count, decide (policy.ts), try the
 * chosen path, fall back to the other when it fails before its first token, and hand back one
 * response in our shape with the route, the reason, the fallback and the cost in its headers and
 * usage. Platform-neutral: the host supplies the edge (a continuation into src/api), its load, the
 * breaker, the metrics and fetch.
 */
import { parseChatRequest, type ChatRequest } from "../api/chat-request";
import { parseCompletionRequest, type CompletionRequest } from "../api/completion-request";
import { DEFAULT_CHAT_MAX_TOKENS, type RouteContext } from "../api/deps";
import { ApiError, errorResponse, toApiError, type ErrorType } from "../api/errors";
import { responseId, unixNow } from "../api/ids";
import { KEEP_ALIVE, SSE_HEADERS, sseStream } from "../api/sse";
import { SseReader } from "../util";
import { Accounting } from "./accounting";
import type { CircuitBreaker } from "./breaker";
import type { Route, RoutingConfig } from "./config";
import type { RoutingMetrics } from "./metrics";
import { collect, normalizeChunk, upstreamUsage, type NormalizeContext } from "./normalize";
import { OriginFailure, OriginRejected, OriginStreamError, openOrigin, type Endpoint, type OriginStream } from "./origin";
import { decideRoute, parsePrefer, splitModel, type RouteDecision } from "./policy";
import type { ChatChunk } from "../api/chat-format";
import type { CompletionChunk } from "./shapes";

/** What the router needs to know about the edge right now. */
export interface EdgeView {
  state: "ready" | "loading" | "failed";
  queueFull: boolean;
  /** Prompt tokens of a validated request: the edge tokenizer's count when loaded, else an estimate. */
  countPromptTokens(endpoint: Endpoint, r: CompletionRequest | ChatRequest): number;
  /** The edge's CPU estimate against its budget; undefined when the deployment checks none. */
  cpu(promptTokens: number, maxTokens: number): { cpuMs: number; budgetMs: number } | undefined;
}

export interface RouterDeps {
  cfg: RoutingConfig;
  /** The id clients use (MODEL_ID) and see in every response, whichever path served it. */
  modelId: string;
  breaker: CircuitBreaker;
  metrics: RoutingMetrics;
  edge(): EdgeView;
  fetch?: typeof fetch;
  now(): number;
}

export interface RouteCall extends RouteContext {
  tier: string;
  log(line: string): void;
}

/** Edge answers that mean "not now" rather than "not this request": worth trying the origin. */
const EDGE_RETRYABLE = new Set([429, 500, 502, 503, 504]);

type Attempt = { ok: true; respond(fallback: Fallback | null): Promise<Response> } | { ok: false; cause: string; response: Response };
interface Fallback {
  from: Route;
  cause: string;
}

export async function routeRequest(call: RouteCall, deps: RouterDeps): Promise<Response> {
  const t0 = deps.now();
  const { endpoint, req } = call;
  const { cfg, metrics } = deps;
  let parsed: CompletionRequest | ChatRequest;
  try {
    parsed = endpoint === "chat" ? parseChatRequest(call.body) : parseCompletionRequest(call.body);
  } catch (err) {
    return refused(toApiError(err));
  }
  const { base, precision } = splitModel(parsed.model);
  if (base !== undefined && base !== deps.modelId) {
    return refused(new ApiError(404, `the model "${parsed.model}" does not exist; this server serves "${deps.modelId}" (and "${deps.modelId}:q4_0" / "${deps.modelId}:bf16" to pick the precision; see GET /v1/models)`, "not_found_error", "model", "model_not_found"));
  }
  const edge = deps.edge();
  const promptTokens = edge.countPromptTokens(endpoint, parsed);
  const maxTokens = parsed.maxTokens ?? DEFAULT_CHAT_MAX_TOKENS;
  const cpu = edge.cpu(promptTokens, maxTokens);
  const decision = decideRoute(
    {
      tier: call.tier,
      precision,
      prefer: parsePrefer(req.headers.get("x-edgelm-prefer-route")),
      promptTokens,
      maxTokens,
      edge: { state: edge.state, queueFull: edge.queueFull, cpuMs: cpu?.cpuMs, cpuBudgetMs: cpu?.budgetMs },
      origin: { configured: cfg.origin !== undefined, available: deps.breaker.canPass() },
    },
    cfg,
  );
  metrics.decisions.inc({ route: decision.route, reason: decision.reason });
  if (decision.route === "none") {
    const retry = decision.reason === "origin_unavailable" ? Math.ceil(cfg.breaker.cooldownMs / 1000) : undefined;
    const type: ErrorType = decision.status === 503 ? "service_unavailable_error" : decision.status === 404 ? "not_found_error" : "invalid_request_error";
    return refused(new ApiError(decision.status, decision.message, type, decision.status === 503 ? null : "model", decision.reason, retry), decision.reason);
  }

  const first = await attempt(decision.route);
  if (first.ok) return first.respond(null);
  metrics.errors.inc({ route: decision.route, kind: first.cause });
  if (!decision.fallback) {
    call.log(`${decision.route} failed (${first.cause}); no fallback for reason ${decision.reason}`);
    return finalError(first.response, decision.route, null);
  }
  call.log(`${decision.route} failed before the first token (${first.cause}): falling back to ${decision.fallback}`);
  await first.response.body?.cancel().catch(() => {});
  const fb: Fallback = { from: decision.route, cause: first.cause };
  const second = await attempt(decision.fallback);
  if (second.ok) {
    metrics.fallbacks.inc({ from: decision.route, to: decision.fallback, cause: first.cause });
    return second.respond(fb);
  }
  metrics.errors.inc({ route: decision.fallback, kind: second.cause });
  return finalError(second.response, decision.fallback, fb);

  // --- helpers (closures over this request) ---

  function headers(route: Route, fallback: Fallback | null, extra: Record<string, string> = {}): Headers {
    const d = decision as RouteDecision;
    const h = new Headers(extra);
    h.set("x-edgelm-route", route);
    h.set("x-edgelm-route-reason", d.reason);
    if (fallback) h.set("x-edgelm-fallback", `${fallback.from}->${route}; cause=${fallback.cause}`);
    const est = route === d.route ? d.estimatedCostUsd : d.alternativeCostUsd;
    if (est !== null) h.set("x-edgelm-estimated-cost-usd", String(Number(est.toPrecision(4))));
    return h;
  }

  function refused(err: ApiError, reason = "invalid_request"): Response {
    metrics.requests.inc({ route: "none", endpoint, status: String(err.status) });
    const res = errorResponse(err);
    res.headers.set("x-edgelm-route", "none");
    res.headers.set("x-edgelm-route-reason", reason);
    return res;
  }

  function finalError(res: Response, route: Route, fallback: Fallback | null): Response {
    metrics.requests.inc({ route, endpoint, status: String(res.status) });
    const h = headers(route, fallback);
    res.headers.forEach((v, k) => h.set(k, v));
    return new Response(res.body, { status: res.status, headers: h });
  }

  function accounting(route: Route): Accounting {
    const d = decision as RouteDecision;
    const est = route === d.route ? d.estimatedCostUsd : d.alternativeCostUsd;
    return new Accounting(route, endpoint, est, promptTokens, cfg.prices, metrics, deps.now, t0);
  }

  async function attempt(route: Route): Promise<Attempt> {
    return route === "edge" ? attemptEdge() : attemptOrigin();
  }

  async function attemptEdge(): Promise<Attempt> {
    const body = { ...(call.body as Record<string, unknown>) };
    // The edge knows only the bare id; the suffix was for the policy.
    if (base !== undefined) body.model = base;
    // Always ask the edge for usage (tokens for metrics and cost); it is stripped again unless the client asked.
    if (parsed.stream) body.stream_options = { include_usage: true };
    const res = await call.local(body);
    if (EDGE_RETRYABLE.has(res.status)) return { ok: false, cause: `edge_http_${res.status}`, response: res };
    return { ok: true, respond: (fb) => finishEdge(res, fb) };
  }

  async function finishEdge(res: Response, fb: Fallback | null): Promise<Response> {
    const acct = accounting("edge");
    const type = res.headers.get("content-type") ?? "";
    if (res.status !== 200) {
      acct.end(res.status, `http_${res.status}`);
      return withHeaders(res, headers("edge", fb));
    }
    if (type.startsWith("text/event-stream")) {
      const reader = new SseReader(res.body!, { comments: true, keepUnterminated: true });
      return sseResponse(edgeItems(reader, parsed.includeUsage, acct), acct, headers("edge", fb), () => void reader.cancel());
    }
    const whole = (await res.json()) as Record<string, any>;
    acct.usage = whole.usage;
    acct.chunks = whole.usage?.completion_tokens ?? 0;
    whole.usage = { ...whole.usage, ...acct.costFields() };
    acct.end(200);
    const h = headers("edge", fb, { "content-type": "application/json" });
    if (whole.usage.edgelm_cost_usd !== null) h.set("x-edgelm-cost-usd", String(whole.usage.edgelm_cost_usd));
    return new Response(JSON.stringify(whole), { status: 200, headers: h });
  }

  async function attemptOrigin(): Promise<Attempt> {
    const origin = cfg.origin!;
    if (!deps.breaker.tryAcquire()) {
      const e = new ApiError(503, "the GPU origin is unavailable right now (circuit breaker open); retry later", "service_unavailable_error", null, "origin_unavailable", Math.ceil(cfg.breaker.cooldownMs / 1000));
      return { ok: false, cause: "breaker_open", response: errorResponse(e) };
    }
    const upstream: Record<string, unknown> = { ...(call.body as Record<string, unknown>), model: origin.model, stream: true, stream_options: { include_usage: true } };
    // Our extension; vLLM would ignore it (its text prompts always parse special tokens).
    delete upstream.allow_special_tokens;
    // Our defaults, not the origin's: the same request means the same length on both paths.
    if (parsed.maxTokens === undefined || ("maxTokensGiven" in parsed && !parsed.maxTokensGiven)) {
      upstream.max_tokens = maxTokens;
      delete upstream.max_completion_tokens;
    }
    let stream: OriginStream;
    try {
      stream = await openOrigin(origin, endpoint, upstream, req.signal, deps.fetch);
    } catch (err) {
      if (err instanceof OriginRejected) {
        deps.breaker.success(); // it answered: alive
        const e = new ApiError(err.status, `the GPU origin refused the request: ${err.message}`, err.status === 404 ? "not_found_error" : "invalid_request_error", err.param, "origin_rejected");
        return { ok: true, respond: async (fb) => (accounting("origin").end(err.status, "rejected"), withHeaders(errorResponse(e), headers("origin", fb))) };
      }
      if (err instanceof OriginFailure) {
        if (err.unhealthy) deps.breaker.failure(err.kind);
        else deps.breaker.release();
        call.log(`origin: ${err.message}`);
        const timeout = err.kind.endsWith("timeout");
        const e = new ApiError(timeout ? 504 : 502, `the GPU origin failed before answering (${err.kind})`, "server_error", null, timeout ? "origin_timeout" : "origin_error");
        return { ok: false, cause: err.kind, response: errorResponse(e) };
      }
      deps.breaker.release();
      throw err;
    }
    deps.breaker.success();
    return { ok: true, respond: (fb) => finishOrigin(stream, fb) };
  }

  async function finishOrigin(stream: OriginStream, fb: Fallback | null): Promise<Response> {
    const acct = accounting("origin");
    const ctx: NormalizeContext = { endpoint, id: responseId(endpoint === "chat" ? "chatcmpl" : "cmpl"), created: unixNow(), model: deps.modelId };
    const items = originItems(stream, ctx, acct);
    if (parsed.stream) return sseResponse(items, acct, headers("origin", fb), stream.cancel);
    const chunks: (CompletionChunk | ChatChunk)[] = [];
    try {
      for await (const it of items) if (it !== KEEP_ALIVE && (it as any).choices?.length) chunks.push(it as CompletionChunk | ChatChunk);
    } catch (err) {
      const e = toApiError(err);
      acct.end(e.status, e.code ?? "error");
      return withHeaders(errorResponse(e), headers("origin", fb));
    }
    const usage = acct.usage ?? { prompt_tokens: promptTokens, completion_tokens: acct.chunks, total_tokens: promptTokens + acct.chunks };
    const whole = collect(chunks, { ...usage, ...acct.costFields() } as any, ctx);
    acct.end(200);
    const h = headers("origin", fb, { "content-type": "application/json" });
    const cost = acct.actualCost();
    if (cost !== null) h.set("x-edgelm-cost-usd", String(cost));
    return new Response(JSON.stringify(whole), { status: 200, headers: h });
  }

  /** Upstream chunks → ours, usage per the client's include_usage; a failure after the first token becomes an ApiError (an error event). */
  async function* originItems(stream: OriginStream, ctx: NormalizeContext, acct: Accounting): AsyncGenerator<unknown> {
    const nullUsage = parsed.includeUsage ? { usage: null } : {};
    try {
      for await (const raw of stream.events) {
        const u = upstreamUsage(raw);
        if (u) acct.usage = u;
        const ch = normalizeChunk(raw, ctx);
        if (!ch) continue;
        const c = ch.choices[0] as { text?: string; delta?: { content?: string } };
        if ((c.text ?? c.delta?.content ?? "") !== "") acct.token();
        yield { ...ch, ...nullUsage };
      }
    } catch (err) {
      if (err instanceof OriginStreamError) {
        deps.breaker.failure(err.kind);
        call.log(`origin: ${err.message}`);
        throw new ApiError(502, err.message, "server_error", null, `origin_${err.kind}`);
      }
      throw err;
    }
    if (parsed.includeUsage) {
      const usage = acct.usage ?? { prompt_tokens: promptTokens, completion_tokens: acct.chunks, total_tokens: promptTokens + acct.chunks };
      yield { id: ctx.id, object: endpoint === "chat" ? "chat.completion.chunk" : "text_completion", created: ctx.created, model: ctx.model, choices: [], usage: { ...usage, ...acct.costFields() } };
    }
  }
}

/** The edge's own SSE, re-read: usage (always asked for) stripped unless the client asked, cost fields added. */
async function* edgeItems(reader: SseReader<true>, includeUsage: boolean, acct: Accounting): AsyncGenerator<unknown> {
  try {
    for (;;) {
      const item = await reader.next();
      if (item === undefined) return;
      if (item.type === "comment") {
        yield KEEP_ALIVE;
        continue;
      }
      if (item.data === "[DONE]") return;
      const o = JSON.parse(item.data) as Record<string, any>;
      if (o.error) {
        const e = o.error;
        throw new ApiError(500, e.message, e.type, e.param ?? null, e.code ?? null);
      }
      if (o.usage) acct.usage = o.usage;
      if (Array.isArray(o.choices) && o.choices.length === 0) {
        if (includeUsage) yield { ...o, usage: { ...o.usage, ...acct.costFields() } };
        continue;
      }
      if (!includeUsage) delete o.usage;
      const c = o.choices?.[0];
      if ((c?.text ?? c?.delta?.content ?? "") !== "") acct.token();
      yield o;
    }
  } finally {
    await reader.cancel();
  }
}

/**
 * Our SSE response over `items`. When the client goes away, `cancelSource` stops the path at once
 * (the generator's own cleanup would wait for its pending read to settle first).
 */
function sseResponse(items: AsyncGenerator<unknown>, acct: Accounting, h: Headers, cancelSource: () => void): Response {
  let failed: string | undefined;
  const watched = (async function* () {
    try {
      yield* items;
    } catch (err) {
      failed = toApiError(err).code ?? "error";
      throw err;
    }
  })();
  const body = sseStream(watched, {
    onEnd: () => acct.end(200, failed, true),
    onCancel: () => {
      cancelSource();
      acct.end(499, "client_disconnected", true);
    },
  });
  for (const [k, v] of Object.entries(SSE_HEADERS)) h.set(k, v);
  return new Response(body, { status: 200, headers: h });
}

function withHeaders(res: Response, h: Headers): Response {
  res.headers.forEach((v, k) => h.set(k, v));
  return new Response(res.body, { status: res.status, headers: h });
}
