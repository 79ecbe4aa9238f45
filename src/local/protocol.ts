/**
 * The messages between the page (index.ts) and the engine's Web Worker (worker.ts). Both sides
 * import only this file from each other, so the page's bundle carries none of the engine.
 */

export interface EngineSettings {
  /** Positions per sequence (default: the model's context length). */
  contextLength?: number;
  /** KV cache budget in MiB (default: one full context: a browser tab rarely serves two users). */
  kvBudgetMB?: number;
  /** Restrict the kernel choice to one build (tests, bench); default: the self-test and timed probe decide. */
  kernels?: "relaxed-fused" | "relaxed" | "simd" | "scalar";
}

export interface LoadRequest {
  type: "load";
  /** Absolute URL of the GGUF. */
  url: string;
  /** The model id clients send as `model` (default: the file's name without .gguf). */
  modelId?: string;
  /** Where the kernel builds are (default: next to the worker script). */
  kernelsBase?: string;
  /** false: never read or write the Cache API (the file is downloaded every time). */
  cache?: boolean;
  settings?: EngineSettings;
  /** Sent with the model's download (an API key for a server that wants one). */
  headers?: [string, string][];
}

/** One HTTP request to the worker's OpenAI-compatible API, in a form postMessage can carry. */
export interface FetchRequest {
  type: "fetch";
  id: number;
  url: string;
  method: string;
  headers: [string, string][];
  body?: string;
}

export interface AbortRequest {
  type: "abort";
  id: number;
}

/** Greedy or sampled token ids straight from the generator, for checks and benchmarks that need ids, not text. */
export interface TokensRequest {
  type: "tokens";
  id: number;
  prompt: number[];
  maxTokens: number;
  temperature: number;
  seed?: number;
}

export type ToWorker = LoadRequest | FetchRequest | AbortRequest | TokensRequest;

export interface Progress {
  /** "download": bytes from the network; "cache": bytes read back from the Cache API. */
  phase: "download" | "cache";
  loaded: number;
  /** The announced length (Content-Length, or the cached entry's). */
  total: number;
}

export interface LoadInfo {
  modelId: string;
  /** Where the weights came from this time. */
  source: "network" | "cache";
  /** Whether a verified copy is now in the Cache API for the next visit. */
  cached: boolean;
  bytes: number;
  etag: string | null;
  /** The engine's description: which kernel build, and why (self-test, timed probe). */
  engine: string;
  loadMs: number;
  /** Something the app may want to show (the quota was full, the server sent no ETag …). */
  warnings: string[];
}

export interface TokensResult {
  ids: number[];
  /** Wall time of the decode steps after the first token, for benchmarks. */
  decodeMs: number;
  prefillMs: number;
}

/** Why something failed, with a code an app can branch on. */
export interface LocalErrorInfo {
  code: "no_wasm_simd" | "no_memory" | "download_failed" | "truncated" | "bad_model" | "internal";
  message: string;
}

export type FromWorker =
  | { type: "progress"; progress: Progress }
  | { type: "ready"; info: LoadInfo }
  | { type: "load-error"; error: LocalErrorInfo }
  | { type: "warning"; message: string }
  | { type: "response"; id: number; status: number; statusText: string; headers: [string, string][] }
  | { type: "chunk"; id: number; chunk: Uint8Array }
  | { type: "end"; id: number }
  | { type: "fetch-error"; id: number; message: string }
  | { type: "tokens"; id: number; result: TokensResult }
  | { type: "tokens-error"; id: number; message: string };
