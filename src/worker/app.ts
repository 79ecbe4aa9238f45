/**
 * One isolate's Worker: config parsed once, the model loader, the fair queue, the origin's circuit
 * breaker and the metrics, and the per-request wrapper around the platform-neutral API (auth,
 * request id, route headers, one log line). Isolate state lives here, so each isolate loads the
 * weights once, serialises its own generations and learns the origin's health on its own.
 */
import { corsHeaders } from "../api/cors";
import type { ApiDeps } from "../api/deps";
import { ApiError, errorResponse, toApiError } from "../api/errors";
import { handleRequest } from "../api/handle-request";
import { queueCapacity } from "../api/batching";
import type { Engine } from "../model/engine";
import { engineMetrics } from "../api/handlers/info";
import { authorize, parseApiKeys, type Keys } from "./auth";
import { CircuitBreaker } from "../routing/breaker";
import type { RoutingConfig } from "../routing/config";
import { PROMETHEUS_CONTENT_TYPE, RoutingMetrics } from "../routing/metrics";
import { routeRequest } from "../routing/router";
import { cpuAdmission } from "./budget";
import { edgeView } from "./edge-view";
import { parseConfig, type Env, type ExecutionContextLike, type WorkerConfig } from "./env";
import { ModelSwap } from "./model-swap";
import { ADMIN_RELOAD_PATH, adminReload } from "./admin-reload";
import { r2ModelFile } from "./model-file";
import playground from "../../build/playground/index.html";
import { localPageAssets } from "./page-assets";
import { WorkerQueue } from "./queue";
import { pathOf, RequestLines } from "../api/request-line";
import { parseRoutingConfig } from "./routing-env";
import { rateLimitHook } from "./rate-limit";
import { generationEnded, nameReplica } from "./shard-replicas";


/** Paths anyone may call: load balancers and uptime checks carry no key; the playground page asks for one itself. */
const OPEN_PATHS = new Set(["/health", "/"]);
/** The playground's own files (edgelm/local's worker and kernels) are as open as the page. */
const isOpen = (path: string) => OPEN_PATHS.has(path) || path.startsWith("/local/");

export class WorkerApp {
  /** The served model: its loader, and replacing it in place (model-swap.ts). */
  readonly models: ModelSwap;
  readonly queue: WorkerQueue;
  readonly breaker: CircuitBreaker;
  readonly metrics: RoutingMetrics;
  private readonly deps: ApiDeps;
  /** Request → its tier, for routing decisions made inside the API layer. */
  private readonly tiers = new WeakMap<Request, string>();
  private readonly contexts = new WeakMap<Request, ExecutionContextLike>();
  private readonly lines: RequestLines;
  /** The engine the queue's capacity was last taken from (a swap brings another). */
  private sizedFor: Engine | undefined;

  constructor(
    readonly cfg: WorkerConfig,
    private readonly keys: Keys,
    readonly routing: RoutingConfig,
    private readonly log: (line: string) => void = (l) => console.log(l),
    env: Env = {},
  ) {
    this.lines = new RequestLines(log);
    this.queue = new WorkerQueue(cfg.queueDepth, 1);
    this.models = new ModelSwap(cfg, this.queue, log);
    this.breaker = new CircuitBreaker(routing.breaker, () => Date.now(), (state, why) => log(`edgelm: origin circuit breaker ${state}: ${why}`));
    this.metrics = new RoutingMetrics(Date.now());
    const breakerStates = { closed: 0, open: 1, "half-open": 2 } as const;
    this.metrics.gauge("edgelm_origin_breaker_state", "The origin's circuit breaker: 0 closed, 1 open, 2 half-open.", () => breakerStates[this.breaker.state]);
    this.metrics.gauge("edgelm_origin_consecutive_failures", "Consecutive origin failures seen by the breaker.", () => this.breaker.failures);
    this.metrics.gauge("edgelm_edge_queue_waiting", "Requests waiting for this isolate's engine.", () => this.queue.depth);
    this.metrics.gauge("edgelm_edge_queue_running", "Generations running on this isolate's engine (up to MAX_BATCH).", () => this.queue.load.running);
    this.metrics.gauge("edgelm_edge_model_ready", "1 once the edge model is loaded in this isolate.", () => (this.models.state.status === "ready" ? 1 : 0));
    const limit = rateLimitHook(env, log, (req) => this.contexts.get(req));
    this.deps = {
      model: () => this.models.state,
      queue: this.queue,
      corsOrigins: cfg.corsOrigins,
      awaitModel: async (signal) => {
        await this.models.waitReady(cfg.loadWaitMs, signal);
        this.sizeQueue();
      },
      admit: cpuAdmission(cfg),
      prefillChunkTokens: cfg.prefillChunkTokens,
      streamStallMs: cfg.streamStallMs,
      modelFile: cfg.serveModelFile ? r2ModelFile(env, cfg) : undefined,
      page: playground,
      get pageAssets() {
        return localPageAssets();
      },
      clock: () => performance.now(),
      // Without this, a request context that workerd drops after a disconnect it never reported
      // (Miniflare's entry Worker loses them; workerd itself does when the disconnect shows up as
      // a failed write) takes the generation's timers with it: the generation never runs again, so
      // not even the stalled-reader fallback could free the queue.
      // A swap also counts each generation against its model, to let the old one go after its last.
      onGenerationStart: (req, finished, model) => {
        this.lines.generationStarted(req);
        this.contexts.get(req)?.waitUntil(finished);
        this.models.track(model, finished);
      },
      onGenerationEnd: (req, s) => {
        this.lines.generationEnded(req, s);
        generationEnded(req);
      },
      route: (ctx) =>
        routeRequest(
          { ...ctx, tier: this.tiers.get(ctx.req) ?? "open", log: (line) => this.lines.note(ctx.req, line) },
          {
            cfg: routing,
            modelId: cfg.modelId,
            breaker: this.breaker,
            metrics: this.metrics,
            edge: () => edgeView(this.models.state, this.queue, cfg),
            now: () => Date.now(),
            limit,
          },
        ),
    };
  }

  async fetch(req: Request, env: Env, ctx: ExecutionContextLike): Promise<Response> {
    this.contexts.set(req, ctx);
    const path = pathOf(req);
    const id = this.lines.begin(req, path);
    // Any request (a health check included) starts the load, so the weights are in by the first
    // completion; it also looks at MODEL_POINTER when a look is due.
    this.models.start(env, ctx);
    this.sizeQueue();
    let tier = "-";
    let res: Response;
    try {
      if (path === ADMIN_RELOAD_PATH) {
        // Its own key (ADMIN_KEY), not an API key: the admin route authorizes itself.
        tier = "admin";
        res = await adminReload(req, env, ctx, this.models);
      } else {
        if (req.method !== "OPTIONS" && !isOpen(path)) tier = authorize(req, this.keys);
        this.tiers.set(req, tier);
        res = path === "/metrics" && req.method === "GET" ? withCors(this.metricsResponse(), req, this.cfg) : await handleRequest(req, this.deps);
      }
    } catch (err) {
      res = withCors(errorResponse(toApiError(err), err instanceof ApiError && err.status === 401 ? { "www-authenticate": "Bearer" } : {}), req, this.cfg);
    }
    res.headers.set("x-request-id", id);
    await nameReplica(req, res, this.lines);
    // Generation requests carry the router's answer; everything else is answered by the edge Worker itself.
    if (!res.headers.has("x-edgelm-route")) res.headers.set("x-edgelm-route", "edge");
    this.lines.responded(req, res, tier);
    return res;
  }

  /** Once a model serves, the queue admits MAX_BATCH generations against its engine's KV budget. */
  private sizeQueue(): void {
    const state = this.models.state;
    // A sharded model holds no KV here: its queue is sized by its step scheduler's batch (model-swap.ts, describe).
    if (state.status !== "ready" || state.model.engine === this.sizedFor || this.cfg.engine === "sharded") return;
    this.sizedFor = state.model.engine;
    this.queue.configure(queueCapacity(state.model.engine, { maxBatch: this.cfg.maxBatch }));
  }

  private metricsResponse(): Response {
    // Routing counters, then the engine's gauges (the same as `edgelm serve`'s /metrics).
    return new Response(this.metrics.render() + engineMetrics(this.deps.model(), this.deps.queue), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" } });
  }
}

function withCors(res: Response, req: Request, cfg: WorkerConfig): Response {
  corsHeaders(req, cfg.corsOrigins).forEach((v, k) => res.headers.set(k, v));
  return res;
}

/** Built on first use per isolate; a broken config becomes a 500 on every request that names the var. */
let app: WorkerApp | undefined;
let appError: Error | undefined;

export function isolateApp(env: Env): WorkerApp {
  if (app) return app;
  if (appError) throw appError;
  try {
    const cfg = parseConfig(env);
    app = new WorkerApp(cfg, parseApiKeys(env.API_KEYS), parseRoutingConfig(env, cfg), undefined, env);
    return app;
  } catch (err) {
    appError = err as Error;
    throw err;
  }
}

export function misconfigured(err: unknown): Response {
  const message = err instanceof Error ? err.message : String(err);
  return errorResponse(new ApiError(500, `this Worker is misconfigured: ${message}`, "server_error", null, "misconfigured"));
}
