/**
 * The edge path: the request goes to this host's own engine through the api's local continuation.
 * A busy or broken edge answers before any token, so that answer is a failure the router can fall
 * back from; anything else is the edge's answer, re-read to add the route's usage and cost.
 */
import { ApiError, isErrorType } from "../api/errors";
import { isObject, type JsonObject } from "../api/fields";
import { KEEP_ALIVE } from "../api/sse";
import { SseReader } from "../util";
import type { Accounting } from "./accounting";
import type { Attempt, Fallback, RoutedRequest } from "./context";
import { carriesOutput } from "./normalize";
import { accountingFor, routeHeaders, sseResponse, wholeResponse, withHeaders } from "./respond";
import { isUsage } from "./shapes";

/** Edge answers that mean "not now" rather than "not this request": worth trying the origin. */
const EDGE_RETRYABLE = new Set([429, 500, 502, 503, 504]);

export async function attemptEdge(r: RoutedRequest): Promise<Attempt> {
  const body: JsonObject = { ...r.body };
  // The edge knows only the bare id.
  if (r.base !== undefined) body.model = r.base;
  // Always ask the edge for usage (tokens for metrics and cost); it is stripped again unless the client asked.
  if (r.request.stream) body.stream_options = { include_usage: true };
  const res = await r.call.local(body);
  if (EDGE_RETRYABLE.has(res.status)) return { ok: false, cause: `edge_http_${res.status}`, response: res };
  return { ok: true, respond: (fallback) => respondEdge(r, res, fallback) };
}

async function respondEdge(r: RoutedRequest, res: Response, fallback: Fallback | null): Promise<Response> {
  const acct = accountingFor(r, "edge");
  const h = routeHeaders(r.decision, "edge", fallback);
  if (res.status !== 200) {
    acct.end(res.status, `http_${res.status}`);
    return withHeaders(res, h);
  }
  const type = res.headers.get("content-type") ?? "";
  if (type.startsWith("text/event-stream") && res.body !== null) {
    // Comments are the edge's keep-alives during a long prefill: passed on as ours.
    const reader = new SseReader(res.body, { comments: true, keepUnterminated: true });
    return sseResponse(edgeItems(reader, r.request.includeUsage, acct), acct, h, () => void reader.cancel());
  }
  const whole: unknown = await res.json();
  if (!isObject(whole)) throw new TypeError("the edge answered with JSON that is not an object");
  const usage = isUsage(whole.usage) ? whole.usage : undefined;
  acct.usage = usage;
  acct.chunks = usage?.completion_tokens ?? 0;
  return wholeResponse({ ...whole, usage: { ...usage, ...acct.costFields() } }, acct, h);
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
      const o: unknown = JSON.parse(item.data);
      if (!isObject(o)) throw new TypeError("the edge sent an event that is not a JSON object");
      if (o.error) throw edgeError(o.error);
      const usage = isUsage(o.usage) ? o.usage : undefined;
      if (usage) acct.usage = usage;
      if (Array.isArray(o.choices) && o.choices.length === 0) {
        if (includeUsage) yield { ...o, usage: { ...usage, ...acct.costFields() } };
        continue;
      }
      if (!includeUsage) delete o.usage;
      if (carriesOutput(Array.isArray(o.choices) ? o.choices[0] : undefined)) acct.token();
      yield o;
    }
  } finally {
    await reader.cancel();
  }
}

/** The edge's error event, raised again so it leaves as our error event. */
function edgeError(e: unknown): ApiError {
  const f: JsonObject = isObject(e) ? e : {};
  const message = typeof f.message === "string" ? f.message : "the edge failed";
  const param = typeof f.param === "string" ? f.param : null;
  const code = typeof f.code === "string" ? f.code : null;
  return new ApiError(500, message, isErrorType(f.type) ? f.type : "server_error", param, code);
}
