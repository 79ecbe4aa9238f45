/**
 * What a host (Node server, Worker) hands to `handleRequest`: the model once loaded (or how far
 * loading got), the generation queue, and HTTP policy. The API layer never loads anything itself.
 */
import type { Engine } from "../model/engine";
import type { ChatTemplateName, Tokenizer } from "../tokenizer/index";
import type { GenerationQueue } from "./queue";

export interface ServedModel {
  /** The id clients send as `model` and see in /v1/models. */
  id: string;
  engine: Engine;
  tokenizer: Tokenizer;
  /** Template for /v1/chat/completions; without one that endpoint answers 400. */
  chatTemplate?: ChatTemplateName;
  /** Unix seconds, for /v1/models. */
  created: number;
  /** Extra facts for /health and /v1/models (file, synthetic, quantization …). */
  info?: Record<string, unknown>;
  /** The engine's own per-request limits, checked after the host's ApiDeps.admit (same contract). */
  admit?(request: Admission): AdmitResult | Promise<AdmitResult>;
  /**
   * A model served by several equal engines (replicated shard pipelines, docs/sharding.md
   * "Replicas") picks the one for this generation, from the request (its headers, its validated
   * JSON body) and its prompt's token ids. Absent: every generation runs on `engine`.
   */
  engineFor?(req: Request, body: unknown, prompt: readonly number[]): Engine;
}

export type ModelState =
  | { status: "ready"; model: ServedModel }
  | { status: "loading"; message: string; /** 0..1 when known */ progress?: number }
  | { status: "failed"; message: string; retry?: LoadRetry; /** Set when the load failed its integrity check or lacked a required manifest. */ integrity?: "failed" | "unverified" };

/** How a host that retries failed loads will try again (the Worker's loader; docs/worker.md, "Loading"). */
export interface LoadRetry {
  /** Loads tried so far, the failed ones included. */
  attempts: number;
  /**
   * "backoff": the object could not be read; a request after `at` tries again.
   * "object_change": the file itself is invalid; only a new upload of it is tried.
   */
  mode: "backoff" | "object_change";
  /** Epoch ms when the next attempt is due (backoff only). */
  at?: number;
}

export interface ApiDeps {
  /** Called per request, so the host can swap state as loading progresses. */
  model(): ModelState;
  /** Serialises generations; without one, requests run concurrently. */
  queue?: GenerationQueue;
  /** Allowed CORS origins; default "*". */
  corsOrigins?: "*" | readonly string[];
  /** Request bodies above this are refused with 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Chat's max_tokens when the request gives none (capped by the context left). Default 256. */
  chatDefaultMaxTokens?: number;
  /**
   * Called before a generation request looks at the model state: a host that is still loading can
   * wait here (bounded) instead of answering 503 at once. Resolve to go on; the state is read after.
   */
  awaitModel?(signal: AbortSignal): Promise<void>;
  /**
   * Admission after the prompt is tokenized and validated, before the request queues: throw an
   * ApiError to refuse (e.g. a CPU-time budget), or lower max_tokens when the client left it to
   * the default. Runs on the local path only (after `route`, when the host routes).
   */
  admit?(request: Admission): AdmitResult | Promise<AdmitResult>;
  /** Prompt tokens per prefill pass (abort and keep-alive granularity); default the generator's. */
  prefillChunkTokens?: number;
  /**
   * A streaming client that reads nothing for this long, with the read-ahead full, is treated as
   * disconnected (the fallback where the host loses the disconnect itself). Default: sse.ts's.
   */
  streamStallMs?: number;
  /** When given, usage carries prefill_ms, decode_ms and decode_tokens_per_s measured with it. */
  clock?: () => number;
  /**
   * Called when a generation takes the engine, with a promise that settles once it has freed it. A
   * host that may tear a request's context down while its generation still runs (workerd, once
   * the response has gone out) keeps the context alive until then, so the generation can still
   * notice that its client left and free the queue.
   */
  onGenerationStart?(req: Request, finished: Promise<void>, model: ServedModel): void;
  /** Called once when a generation ends however it ends (hosts log it: where an abort stopped the work). */
  onGenerationEnd?(req: Request, summary: GenerationSummary): void;
  /**
   * Routing hook: given a generation request's parsed (not yet validated) body, the host decides
   * who serves it — this host's engine through `local` (the usual path: wait for the model,
   * validate, admit, generate; errors come back as error responses so the host can fall back), or
   * something else (a GPU origin). Without it every request is served locally.
   */
  route?(ctx: RouteContext): Promise<Response>;
  /**
   * The GGUF itself, for `GET /v1/models/{id}/file` (a browser running the model on its own
   * device downloads it by ranges). Absent: that route answers 404 saying how to turn it on.
   */
  modelFile?: ModelFileSource;
  /** The HTML page served at `GET /` (the playground); absent: `/` is a 404 like any unknown path. */
  page?: string;
  /**
   * Files served at `GET /local/NAME` with no key, like the page: edgelm/local's Web Worker script
   * and kernels, which the playground's "on this device" mode loads (docs/local.md).
   */
  pageAssets?: PageAssets;
}

/** A host's view of the model file: stat, then ranged reads, so either host can serve downloads. */
export interface ModelFileSource {
  /** The model id the file is served under (the same id as `model` in requests). */
  id: string;
  /** File name offered to a browser saving it. */
  fileName: string;
  /** Size and a strong ETag (quoted, as sent in the header) of the file as it is now. */
  stat(): Promise<{ size: number; etag: string }>;
  /**
   * Bytes start..end inclusive of the file whose ETag is `etag`; a host that can tell the file
   * changed since `stat` throws rather than mixing two versions.
   */
  read(start: number, end: number, etag: string): Promise<ReadableStream<Uint8Array>>;
}

export interface RouteContext {
  req: Request;
  endpoint: "completions" | "chat";
  body: unknown;
  /** Serves `body` (possibly rewritten by the host) on this host's engine; never throws. */
  local(body: unknown): Promise<Response>;
}

export interface GenerationSummary {
  outcome: "done" | "aborted" | "error";
  /**
   * What ended an aborted generation: the host's disconnect signal, the response stream cancelled,
   * or a reader that took nothing for the stall time (a disconnect nobody reported).
   */
  abortedBy?: "signal" | "cancelled" | "stalled";
  promptTokens: number;
  /** Prompt tokens in the KV cache when it ended (all of them once decoding started). */
  prefilled: number;
  completionTokens: number;
  /** Epoch ms (Date.now) when the first token came out; absent when none did. */
  firstTokenAt?: number;
}

/** Admission's answer: nothing (go on as asked), or a smaller max_tokens (only when not given by the client). */
export type AdmitResult = void | { maxTokens?: number };

/** What admission knows about a generation request. */
export interface Admission {
  endpoint: "completions" | "chat";
  promptTokens: number;
  maxTokens: number;
  /** The request field that sets maxTokens (for error messages). */
  maxTokensParam: string;
  /** Whether the client chose max_tokens (false: the endpoint's default). */
  maxTokensGiven: boolean;
}

export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
export const DEFAULT_CHAT_MAX_TOKENS = 256;

/** name → its bytes (or text) and content type. */
export type PageAssets = Readonly<Record<string, { type: string; body: string | Uint8Array<ArrayBuffer> }>>;
