/**
 * The whole HTTP API on web-standard Request/Response, shared by the Node server and the Worker:
 * routing, CORS, body limits, load state, and turning every failure into an OpenAI error body.
 */
import { readJson } from "./body";
import { corsHeaders, preflight } from "./cors";
import { DEFAULT_MAX_BODY_BYTES, type ApiDeps, type PageAssets, type RouteContext, type ServedModel } from "./deps";
import { ApiError, errorResponse, toApiError } from "./errors";
import { chatCompletions } from "./handlers/chat";
import { completions } from "./handlers/completions";
import { engineMetrics, health, models, PROMETHEUS_CONTENT_TYPE, retryAfterSeconds } from "./handlers/info";
import { MODEL_FILE_PATH, modelFile } from "./handlers/model-file";

type Generate = (req: Request, body: unknown, deps: ApiDeps, model: ServedModel) => Promise<Response>;

interface Route {
  method: "GET" | "POST";
  run: (req: Request, deps: ApiDeps) => Promise<Response> | Response;
}

/** POST routes: body read, then routed (when the host routes), then model readiness checked before the handler sees the request. */
const generation =
  (endpoint: RouteContext["endpoint"], handler: Generate) =>
  async (req: Request, deps: ApiDeps): Promise<Response> => {
    const body = await readJson(req, deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    if (!deps.route) return local(handler, req, body, deps);
    const serveLocally = (b: unknown) => local(handler, req, b, deps).catch((err) => errorResponse(toApiError(err)));
    return deps.route({ req, endpoint, body, local: serveLocally });
  };

/** This host's engine serves the request. */
async function local(handler: Generate, req: Request, body: unknown, deps: ApiDeps): Promise<Response> {
  await deps.awaitModel?.(req.signal);
  const state = deps.model();
  if (state.status === "loading") {
    throw new ApiError(503, `the model is still loading (${state.message}); retry shortly`, "service_unavailable_error", null, "model_loading", 2);
  }
  if (state.status === "failed") {
    const next = state.retry?.mode === "object_change" ? "; it is loaded again once the file is replaced" : state.retry ? `; the next attempt is in about ${retryAfterSeconds(state)} s` : "";
    throw new ApiError(503, `the model failed to load: ${state.message}${next}`, "service_unavailable_error", null, "model_unavailable", retryAfterSeconds(state));
  }
  return handler(req, body, deps, state.model);
}

const ROUTES: Record<string, Route> = {
  "/v1/completions": { method: "POST", run: generation("completions", completions) },
  "/v1/chat/completions": { method: "POST", run: generation("chat", chatCompletions) },
  "/v1/models": { method: "GET", run: (_req, deps) => models(deps.model()) },
  "/health": { method: "GET", run: (_req, deps) => health(deps.model(), deps.queue) },
  "/metrics": { method: "GET", run: (_req, deps) => new Response(engineMetrics(deps.model(), deps.queue), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" } }) },
};

export async function handleRequest(req: Request, deps: ApiDeps): Promise<Response> {
  const origins = deps.corsOrigins ?? "*";
  if (req.method === "OPTIONS") return preflight(req, origins);
  const cors = corsHeaders(req, origins);
  let res: Response;
  try {
    res = await route(req, deps);
  } catch (err) {
    res = errorResponse(toApiError(err));
  }
  // Response headers may be immutable (e.g. Response.json in some runtimes): copy into a new Response.
  const headers = new Headers(res.headers);
  cors.forEach((v, k) => headers.set(k, v));
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

function pageRoute(html: string): Route {
  // no-cache: a redeploy changes the page; the browser revalidates rather than running a stale one.
  return { method: "GET", run: () => new Response(html, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" } }) };
}

function assetRoute(a: PageAssets[string]): Route {
  // The bundle changes with each build: revalidate, as for the page.
  return { method: "GET", run: () => new Response(a.body, { headers: { "content-type": a.type, "cache-control": "no-cache" } }) };
}

async function route(req: Request, deps: ApiDeps): Promise<Response> {
  const path = new URL(req.url).pathname.replace(/\/+$/, "") || "/";
  const file = path.match(MODEL_FILE_PATH);
  const asset = path.startsWith("/local/") ? deps.pageAssets?.[path.slice("/local/".length)] : undefined;
  const r = file ? { method: "GET" as const, run: (q: Request) => modelFile(q, file[1], deps.modelFile) } : path === "/" && deps.page !== undefined ? pageRoute(deps.page) : asset ? assetRoute(asset) : ROUTES[path];
  if (!r) throw new ApiError(404, `no route for ${req.method} ${path}; this server has ${Object.keys(ROUTES).join(", ")}`, "not_found_error", null, "not_found");
  const allowed = r.method === "GET" ? "GET, HEAD" : r.method;
  if (req.method !== r.method && !(r.method === "GET" && req.method === "HEAD")) {
    const e = new ApiError(405, `${path} takes ${r.method}, not ${req.method}`, "invalid_request_error", null, "method_not_allowed");
    return errorResponse(e, { allow: `${allowed}, OPTIONS` });
  }
  return r.run(req, deps);
}
