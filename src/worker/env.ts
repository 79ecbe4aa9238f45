/**
 * The Worker's bindings and vars (wrangler.toml), and their parsed, validated form. The binding
 * types are the few members we use, declared structurally, so this code type-checks with the
 * project's DOM/Node types and needs no ambient @cloudflare/workers-types globals.
 */
import { chooseEngine, DEFAULT_MAX_BATCH_TOKENS, ENGINE_NAMES, modelIdFromFile, type EngineName } from "../api/index";
import { parseBuildKind, type BuildKind } from "../engine/kernels";
import { DEFAULT_STALL_MS } from "../api/sse";
import type { ChatTemplateName } from "../tokenizer/index";

/** The part of an R2 bucket binding we use. */
export interface R2BucketLike {
  get(key: string): Promise<{ body: ReadableStream<Uint8Array>; size: number; etag?: string; uploaded?: Date } | null>;
  head(key: string): Promise<{ size: number; etag?: string; uploaded?: Date } | null>;
}

/** A service binding (e.g. Miniflare's read-only folder binding) that serves `GET /<key>`. */
export interface FetcherLike {
  fetch(input: Request | string, init?: RequestInit): Promise<Response>;
}

/** A Durable Object namespace binding, as far as fetch-based objects need it. */
export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: unknown): FetcherLike;
}

export interface ExecutionContextLike {
  waitUntil(promise: Promise<unknown>): void;
}

/** Vars arrive as strings (wrangler.toml `[vars]`, `--var`), numbers when written as TOML numbers. */
export type Var = string | number | undefined;

export interface Env {
  /** R2 bucket holding the GGUF. */
  MODELS?: R2BucketLike;
  /** Alternative source for local development: a folder served over a service binding. Wins over MODELS. */
  MODEL_FILES?: FetcherLike;
  /** Object key of the GGUF in MODELS (or path under MODEL_FILES). */
  MODEL_KEY?: Var;
  /** The id clients send as `model`; default the key without `.gguf`. */
  MODEL_ID?: Var;
  /** zephyr | chatml: overrides the GGUF's template (base models have none; synthetic ones default to zephyr). */
  CHAT_TEMPLATE?: Var;
  /** wasm (default) | ref | sharded (docs/sharding.md). */
  ENGINE?: Var;
  /** auto (default) | relaxed-fused | relaxed | simd | scalar: the kernel build of the wasm engine (docs/kernels.md, "Selection"). */
  KERNELS?: Var;
  /** "*" or comma-separated origins. */
  CORS_ORIGINS?: Var;
  /** Requests that may wait for the engine in one isolate; more get 429. */
  QUEUE_DEPTH?: Var;
  /** Generations decoding together in batched steps in one isolate (default 4; 1: one at a time). docs/worker.md, "Batching". */
  MAX_BATCH?: Var;
  /** Token rows per batched step, prompt parts included (default 64, at least MAX_BATCH). */
  MAX_BATCH_TOKENS?: Var;
  /** The wasm engine's KV cache in MiB, shared by the running generations (default: two full contexts of the model). */
  KV_BUDGET_MB?: Var;
  /** How long a generation request waits for the weights to load before 503. */
  LOAD_WAIT_MS?: Var;
  /** First pause before a load that could not read its object is tried again; doubles per failure up to LOAD_RETRY_MAX_MS. */
  LOAD_RETRY_MS?: Var;
  LOAD_RETRY_MAX_MS?: Var;
  /** Mirror of `[limits] cpu_ms`: the CPU time one request may use. 0 = no check. */
  CPU_BUDGET_MS?: Var;
  /** Throughput of this deployment's engine on this model, for the up-front CPU estimate. */
  PREFILL_TOKENS_PER_S?: Var;
  DECODE_TOKENS_PER_S?: Var;
  /** Prompt tokens per prefill pass: abort and keep-alive granularity during prefill. */
  PREFILL_CHUNK_TOKENS?: Var;
  /** A streaming client that takes no data for this long is treated as gone (see src/api/sse.ts). */
  STREAM_STALL_MS?: Var;
  /** "true": GET /v1/models/{id}/file serves the GGUF from MODELS (redistribution: docs/worker.md). Default off. */
  SERVE_MODEL_FILE?: Var;
  /** "true": a model without a manifest (sharded: a plan without hashes) is refused, not served unverified. Default off. */
  REQUIRE_MANIFEST?: Var;
  /** Secret: JSON object {"<key>": "<tier>"}. Unset or empty: no auth. */
  API_KEYS?: Var;
  /** Secret: the bearer key of POST /admin/reload (docs/worker.md, "Swapping the model"). Unset: that route is off. */
  ADMIN_KEY?: Var;
  /** Key of an object (in MODELS or MODEL_FILES) whose text is the model object's key: the served model follows it. Unset: MODEL_KEY. */
  MODEL_POINTER?: Var;
  /** Seconds between looks at MODEL_POINTER (and at the model object's version), made by requests. Default 30. */
  MODEL_POINTER_POLL_S?: Var;
  /** The isolate's memory, MiB: two engines side by side must fit in it during a swap, else the old one is drained first. Default 128. */
  MEMORY_LIMIT_MB?: Var;
  /** JSON {"<tier>": {"rpm": n, "tpm": n, "slice": f}}: per-key rate limits (docs/worker.md, "Rate limits"). Unset: none. */
  RATE_LIMITS?: Var;
  /** The RateLimiter Durable Object namespace; needed when RATE_LIMITS is set. */
  RATE_LIMITER?: DurableObjectNamespaceLike;
  /** Routing to the GPU origin (src/routing/, docs/routing.md). ORIGIN_URL unset: edge only. */
  ORIGIN_URL?: Var;
  ORIGIN_MODEL?: Var;
  /** Secret: the origin's bearer token (vLLM --api-key). Never logged or echoed. */
  ORIGIN_API_KEY?: Var;
  ORIGIN_CONNECT_TIMEOUT_MS?: Var;
  ORIGIN_FIRST_TOKEN_TIMEOUT_MS?: Var;
  ORIGIN_IDLE_TIMEOUT_MS?: Var;
  /** JSON {"<tier>": "edge-only" | "origin-only" | "auto"}. */
  ROUTE_TIERS?: Var;
  ROUTE_DEFAULT_TIER_MODE?: Var;
  ROUTE_AUTO_DEFAULT?: Var;
  ROUTE_LONG_PROMPT_TOKENS?: Var;
  ROUTE_LARGE_MAX_TOKENS?: Var;
  BREAKER_FAILURES?: Var;
  BREAKER_COOLDOWN_MS?: Var;
  /** The price table (USD). */
  EDGE_USD_PER_CPU_MS?: Var;
  EDGE_USD_PER_REQUEST?: Var;
  ORIGIN_USD_PER_GPU_HOUR?: Var;
  ORIGIN_PREFILL_TOKENS_PER_S?: Var;
  ORIGIN_DECODE_TOKENS_PER_S?: Var;
}

export interface WorkerConfig {
  modelKey: string;
  modelId: string;
  chatTemplate?: ChatTemplateName;
  engine: EngineName;
  /** The kernel build KERNELS forces; undefined = the first build in preference order that passes the self-test. */
  kernels?: BuildKind;
  corsOrigins: "*" | string[];
  queueDepth: number;
  maxBatch: number;
  maxBatchTokens: number;
  /** Undefined: the engine's default (two full contexts). */
  kvBudgetMB?: number;
  loadWaitMs: number;
  /** Backoff of a load that could not read its object: the first pause, and the most it grows to. */
  loadRetryMs: number;
  loadRetryMaxMs: number;
  cpuBudgetMs: number;
  prefillTokensPerS: number;
  decodeTokensPerS: number;
  prefillChunkTokens: number;
  streamStallMs: number;
  serveModelFile: boolean;
  requireManifest: boolean;
  /** MODEL_POINTER: when set, the model object's key is read from this object instead of MODEL_KEY. */
  modelPointer?: string;
  modelPointerPollS: number;
  memoryLimitMB: number;
}

export const DEFAULT_MODEL_KEY = "stablelm-2-1_6b-q4_0.gguf";
/** Generations one isolate decodes together unless MAX_BATCH says otherwise (docs/worker.md, "Batching in the Worker", says why 4). */
export const DEFAULT_WORKER_MAX_BATCH = 4;

/** A misconfigured deployment: every request answers 500 with this message (it names vars, never secrets). */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export function text(v: Var): string | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  return s === "" ? undefined : s;
}

export function num(name: string, v: Var, def: number, opts: { min: number; integer?: boolean }): number {
  const s = text(v);
  if (s === undefined) return def;
  const n = Number(s);
  if (!Number.isFinite(n) || n < opts.min || (opts.integer && !Number.isInteger(n))) {
    throw new ConfigError(`var ${name} must be ${opts.integer ? "an integer" : "a number"} ≥ ${opts.min}, got ${JSON.stringify(s)}`);
  }
  return n;
}

export function parseConfig(env: Env): WorkerConfig {
  const modelKey = text(env.MODEL_KEY) ?? DEFAULT_MODEL_KEY;
  const engine = engineVar(env.ENGINE);
  const chat = text(env.CHAT_TEMPLATE);
  if (chat !== undefined && chat !== "zephyr" && chat !== "chatml") throw new ConfigError(`var CHAT_TEMPLATE must be "zephyr", "chatml" or empty, got ${JSON.stringify(chat)}`);
  const cors = text(env.CORS_ORIGINS) ?? "*";
  const maxBatch = num("MAX_BATCH", env.MAX_BATCH, DEFAULT_WORKER_MAX_BATCH, { min: 1, integer: true });
  const maxBatchTokens = num("MAX_BATCH_TOKENS", env.MAX_BATCH_TOKENS, Math.max(DEFAULT_MAX_BATCH_TOKENS, maxBatch), { min: 1, integer: true });
  // Every sequence of a step needs a row.
  if (maxBatchTokens < maxBatch) throw new ConfigError(`var MAX_BATCH_TOKENS must be at least MAX_BATCH (${maxBatch}), got ${maxBatchTokens}`);
  const kvBudget = text(env.KV_BUDGET_MB);
  if (kvBudget !== undefined && !(Number(kvBudget) > 0)) throw new ConfigError(`var KV_BUDGET_MB must be a number of MiB > 0, got ${JSON.stringify(kvBudget)}`);
  return {
    modelKey,
    modelId: text(env.MODEL_ID) ?? modelIdFromFile(modelKey),
    chatTemplate: chat,
    engine,
    kernels: kernelsVar(env.KERNELS),
    corsOrigins: cors === "*" ? "*" : cors.split(",").map((s) => s.trim()).filter(Boolean),
    queueDepth: num("QUEUE_DEPTH", env.QUEUE_DEPTH, 16, { min: 0, integer: true }),
    maxBatch,
    maxBatchTokens,
    kvBudgetMB: kvBudget === undefined ? undefined : Number(kvBudget),
    loadWaitMs: num("LOAD_WAIT_MS", env.LOAD_WAIT_MS, 30_000, { min: 0 }),
    loadRetryMs: num("LOAD_RETRY_MS", env.LOAD_RETRY_MS, 1_000, { min: 1 }),
    loadRetryMaxMs: num("LOAD_RETRY_MAX_MS", env.LOAD_RETRY_MAX_MS, 60_000, { min: 1 }),
    cpuBudgetMs: num("CPU_BUDGET_MS", env.CPU_BUDGET_MS, 30_000, { min: 0 }),
    prefillTokensPerS: num("PREFILL_TOKENS_PER_S", env.PREFILL_TOKENS_PER_S, 0, { min: 0 }),
    decodeTokensPerS: num("DECODE_TOKENS_PER_S", env.DECODE_TOKENS_PER_S, 0, { min: 0 }),
    prefillChunkTokens: num("PREFILL_CHUNK_TOKENS", env.PREFILL_CHUNK_TOKENS, 32, { min: 1, integer: true }),
    streamStallMs: num("STREAM_STALL_MS", env.STREAM_STALL_MS, DEFAULT_STALL_MS, { min: 1 }),
    serveModelFile: flag("SERVE_MODEL_FILE", env.SERVE_MODEL_FILE),
    requireManifest: flag("REQUIRE_MANIFEST", env.REQUIRE_MANIFEST),
    modelPointer: text(env.MODEL_POINTER),
    modelPointerPollS: num("MODEL_POINTER_POLL_S", env.MODEL_POINTER_POLL_S, 30, { min: 1 }),
    memoryLimitMB: num("MEMORY_LIMIT_MB", env.MEMORY_LIMIT_MB, 128, { min: 1 }),
  };
}

/** A yes/no var: "true" or "false" (or unset: false); anything else names the var rather than guessing. */
export function flag(name: string, v: Var): boolean {
  const s = text(v)?.toLowerCase();
  if (s === undefined || s === "false") return false;
  if (s === "true") return true;
  throw new ConfigError(`var ${name} must be "true" or "false", got ${JSON.stringify(s)}`);
}

/** The Worker loads every engine, "sharded" included (src/worker/sharded.ts, docs/sharding.md). */
function engineVar(v: Var): EngineName {
  try {
    return chooseEngine(text(v), ENGINE_NAMES, "var ENGINE");
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

function kernelsVar(v: Var): BuildKind | undefined {
  try {
    return parseBuildKind(text(v), "var KERNELS");
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}
