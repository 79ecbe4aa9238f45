/**
 * The first step of a routed request: validate the body with the edge's own parsers (so a 400 is
 * the same on both paths and a bad request reaches neither), check the model name, count the
 * prompt and ask the policy. A request it cannot route gets its final response here.
 */
import { parseChatRequest, type ChatRequest } from "../api/chat-request";
import { parseCompletionRequest, type CompletionRequest } from "../api/completion-request";
import { DEFAULT_CHAT_MAX_TOKENS } from "../api/deps";
import { ApiError, invalid, toApiError } from "../api/errors";
import { isObject } from "../api/fields";
import type { RoutingConfig } from "./config";
import type { RouteCall, RoutedRequest, RouterDeps } from "./context";
import { decideRoute, parsePrefer, splitModel, type RouteRefusal } from "./policy";
import { refused } from "./respond";

export type Decided = { ok: true; routed: RoutedRequest } | { ok: false; response: Response };

export function decide(call: RouteCall, deps: RouterDeps): Decided {
  const t0 = deps.now();
  const { endpoint, req, body } = call;
  const { cfg, metrics } = deps;
  let request: CompletionRequest | ChatRequest;
  try {
    request = endpoint === "chat" ? parseChatRequest(body) : parseCompletionRequest(body);
    // The parsers have just refused anything but an object; this check only tells the compiler.
    if (!isObject(body)) throw invalid("body", "the request body must be a JSON object", "invalid_type");
  } catch (err) {
    return { ok: false, response: refused(metrics, endpoint, toApiError(err)) };
  }
  const { base, precision } = splitModel(request.model);
  if (base !== undefined && base !== deps.modelId) {
    const err = new ApiError(404, `the model "${request.model}" does not exist; this server serves "${deps.modelId}" (and "${deps.modelId}:q4_0" / "${deps.modelId}:bf16" to pick the precision; see GET /v1/models)`, "not_found_error", "model", "model_not_found");
    return { ok: false, response: refused(metrics, endpoint, err) };
  }
  const edge = deps.edge();
  const promptTokens = edge.countPromptTokens(endpoint, request);
  const maxTokens = request.maxTokens ?? DEFAULT_CHAT_MAX_TOKENS;
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
  if (decision.route === "none") return { ok: false, response: refused(metrics, endpoint, refusalError(decision, cfg), decision.reason) };
  return { ok: true, routed: { call, deps, body, request, base, promptTokens, maxTokens, decision, t0 } };
}

function refusalError(refusal: RouteRefusal, cfg: RoutingConfig): ApiError {
  const { status, reason } = refusal;
  const retry = reason === "origin_unavailable" ? Math.ceil(cfg.breaker.cooldownMs / 1000) : undefined;
  const type = status === 503 ? "service_unavailable_error" : status === 404 ? "not_found_error" : "invalid_request_error";
  return new ApiError(status, refusal.message, type, status === 503 ? null : "model", reason, retry);
}
