/**
 * The origin path: the request goes to the GPU origin (vLLM), through the circuit breaker, always
 * streamed upstream. Everything that goes wrong before the first token is a failure the router can
 * fall back from; after it, the origin's chunks become ours (normalize.ts), streamed or collected.
 */
import type { ChatChunk } from "../api/chat-format";
import { ApiError, errorResponse, toApiError } from "../api/errors";
import { responseId, unixNow } from "../api/ids";
import type { Accounting } from "./accounting";
import type { Attempt, Fallback, RoutedRequest } from "./context";
import { carriesOutput, collect, normalizeChunk, upstreamUsage, type NormalizeContext } from "./normalize";
import { originBody } from "./origin-body";
import { OriginFailure, OriginRejected, OriginStreamError, openOrigin, type OriginStream } from "./origin";
import { accountingFor, routeHeaders, sseResponse, wholeResponse, withHeaders } from "./respond";
import type { CompletionChunk } from "./shapes";

export async function attemptOrigin(r: RoutedRequest): Promise<Attempt> {
  const { call, deps, request } = r;
  const origin = deps.cfg.origin;
  // The policy never picks an origin that is not configured; were it to, this path simply fails.
  if (origin === undefined) return failure("not_configured", new ApiError(503, "this deployment has no GPU origin configured (ORIGIN_URL)", "service_unavailable_error", null, "origin_not_configured"));
  if (!deps.breaker.tryAcquire()) {
    return failure("breaker_open", new ApiError(503, "the GPU origin is unavailable right now (circuit breaker open); retry later", "service_unavailable_error", null, "origin_unavailable", Math.ceil(deps.cfg.breaker.cooldownMs / 1000)));
  }
  const upstream = originBody(call.endpoint, r.body, request, origin.model, r.maxTokens);
  let stream: OriginStream;
  try {
    stream = await openOrigin(origin, call.endpoint, upstream, call.req.signal, deps.fetch);
  } catch (err) {
    if (err instanceof OriginRejected) {
      deps.breaker.success(); // it answered: alive
      const e = new ApiError(err.status, `the GPU origin refused the request: ${err.message}`, err.status === 404 ? "not_found_error" : "invalid_request_error", err.param, "origin_rejected");
      return {
        ok: true,
        respond: async (fallback) => {
          accountingFor(r, "origin").end(err.status, "rejected");
          return withHeaders(errorResponse(e), routeHeaders(r.decision, "origin", fallback));
        },
      };
    }
    if (err instanceof OriginFailure) {
      if (err.unhealthy) deps.breaker.failure(err.kind);
      else deps.breaker.release();
      call.log(`origin: ${err.message}`);
      const timeout = err.kind.endsWith("timeout");
      return failure(err.kind, new ApiError(timeout ? 504 : 502, `the GPU origin failed before answering (${err.kind})`, "server_error", null, timeout ? "origin_timeout" : "origin_error"));
    }
    deps.breaker.release();
    throw err;
  }
  deps.breaker.success();
  return { ok: true, respond: (fallback) => respondOrigin(r, stream, fallback) };
}

function failure(cause: string, err: ApiError): Attempt {
  return { ok: false, cause, response: errorResponse(err) };
}

async function respondOrigin(r: RoutedRequest, stream: OriginStream, fallback: Fallback | null): Promise<Response> {
  const { endpoint } = r.call;
  const acct = accountingFor(r, "origin");
  const h = routeHeaders(r.decision, "origin", fallback);
  const ctx: NormalizeContext = { endpoint, id: responseId(endpoint === "chat" ? "chatcmpl" : "cmpl"), created: unixNow(), model: r.deps.modelId };
  const chunks = originChunks(r, stream, ctx, acct);
  if (r.request.stream) return sseResponse(withUsage(chunks, r.request.includeUsage, ctx, acct), acct, h, stream.cancel);
  const collected: (CompletionChunk | ChatChunk)[] = [];
  try {
    for await (const chunk of chunks) collected.push(chunk);
  } catch (err) {
    const e = toApiError(err);
    acct.end(e.status, e.code ?? "error");
    return withHeaders(errorResponse(e), h);
  }
  const usage = { ...acct.finalUsage(), ...acct.costFields() };
  return wholeResponse(collect(collected, usage, ctx), acct, h);
}

/** Upstream chunks as ours, counted; a failure after the first token becomes an ApiError (an error event). */
async function* originChunks(r: RoutedRequest, stream: OriginStream, ctx: NormalizeContext, acct: Accounting): AsyncGenerator<CompletionChunk | ChatChunk> {
  try {
    for await (const raw of stream.events) {
      const u = upstreamUsage(raw);
      if (u) acct.usage = u;
      const chunk = normalizeChunk(raw, ctx);
      if (!chunk) continue;
      if (carriesOutput(chunk.choices[0])) acct.token();
      yield chunk;
    }
  } catch (err) {
    if (err instanceof OriginStreamError) {
      r.deps.breaker.failure(err.kind);
      r.call.log(`origin: ${err.message}`);
      throw new ApiError(502, err.message, "server_error", null, `origin_${err.kind}`);
    }
    throw err;
  }
}

/** The streamed answer's usage, per the client's include_usage: null on each chunk, then a usage chunk with the cost. */
async function* withUsage(chunks: AsyncGenerator<CompletionChunk | ChatChunk>, includeUsage: boolean, ctx: NormalizeContext, acct: Accounting): AsyncGenerator<unknown> {
  const nullUsage = includeUsage ? { usage: null } : {};
  for await (const chunk of chunks) yield { ...chunk, ...nullUsage };
  if (includeUsage) {
    const object = ctx.endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
    yield { id: ctx.id, object, created: ctx.created, model: ctx.model, choices: [], usage: { ...acct.finalUsage(), ...acct.costFields() } };
  }
}
