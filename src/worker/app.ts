/**
 * One isolate's Worker: config parsed once, the model loader, the fair queue, and the per-request
 * wrapper around the platform-neutral API (auth, request id, route header, one log line). Isolate
 * state lives here, so each isolate loads the weights once and serialises its own generations.
 */
import { corsHeaders } from "../api/cors";
import type { ApiDeps } from "../api/deps";
import { ApiError, errorResponse, toApiError } from "../api/errors";
import { handleRequest } from "../api/handleRequest";
import { authorize, parseApiKeys, type Keys } from "./auth";
import { cpuAdmission } from "./budget";
import { parseConfig, type Env, type ExecutionContextLike, type WorkerConfig } from "./env";
import { ModelLoader } from "./loader";
import { WorkerQueue } from "./queue";
import { requestIdOf } from "./requestId";

/** Paths anyone may call: load balancers and uptime checks carry no key. */
const OPEN_PATHS = new Set(["/health"]);

export class WorkerApp {
  readonly loader: ModelLoader;
  readonly queue: WorkerQueue;
  private readonly deps: ApiDeps;
  /** Request → its x-request-id, for log lines written from inside the API layer. */
  private readonly ids = new WeakMap<Request, string>();

  constructor(
    readonly cfg: WorkerConfig,
    private readonly keys: Keys,
    private readonly log: (line: string) => void = (l) => console.log(l),
  ) {
    this.loader = new ModelLoader(cfg, log);
    this.queue = new WorkerQueue(cfg.queueDepth, 1);
    this.deps = {
      model: () => this.loader.state,
      queue: this.queue,
      corsOrigins: cfg.corsOrigins,
      awaitModel: (signal) => this.loader.waitReady(cfg.loadWaitMs, signal),
      admit: cpuAdmission(cfg),
      prefillChunkTokens: cfg.prefillChunkTokens,
      clock: () => performance.now(),
      onGenerationEnd: (req, s) => {
        const where = s.prefilled < s.promptTokens ? `during prefill (${s.prefilled} of ${s.promptTokens} prompt tokens)` : `after ${s.completionTokens} tokens (prompt ${s.promptTokens})`;
        this.log(`${this.ids.get(req) ?? "-"} generation ${s.outcome} ${where}`);
      },
    };
  }

  async fetch(req: Request, env: Env, ctx: ExecutionContextLike): Promise<Response> {
    const t0 = Date.now();
    const id = requestIdOf(req);
    this.ids.set(req, id);
    req.signal.addEventListener("abort", () => this.log(`${id} client disconnected`), { once: true });
    const path = new URL(req.url).pathname.replace(/\/+$/, "") || "/";
    // Any request (a health check included) starts the load, so the weights are in by the first completion.
    this.loader.start(env, ctx);
    let tier = "-";
    let res: Response;
    try {
      if (req.method !== "OPTIONS" && !OPEN_PATHS.has(path)) tier = authorize(req, this.keys);
      res = await handleRequest(req, this.deps);
    } catch (err) {
      res = withCors(errorResponse(toApiError(err), err instanceof ApiError && err.status === 401 ? { "www-authenticate": "Bearer" } : {}), req, this.cfg);
    }
    res.headers.set("x-request-id", id);
    res.headers.set("x-edgelm-route", "edge");
    // Never the Authorization header or the key: the tier is enough to follow a client.
    this.log(`${id} ${req.method} ${path} ${res.status} ${Date.now() - t0}ms tier=${tier}`);
    return res;
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
    app = new WorkerApp(parseConfig(env), parseApiKeys(env.API_KEYS));
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
