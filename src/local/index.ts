/**
 * `edgelm/local`: the engine on the user's own device. The page side only: it starts the engine's
 * Web Worker (worker.ts, a separate bundle), relays load progress, and offers a `fetch` that
 * answers OpenAI-compatible requests from that worker, so `edgelm/client` (or any OpenAI client
 * that takes a fetch) streams from the device with one option changed:
 *
 *   const local = createLocalEngine({ model: "https://example.com/stablelm-2-1_6b-q4_0.gguf" });
 *   await local.ready;
 *   const client = createClient({ baseURL: LOCAL_BASE_URL, fetch: local.fetch });
 *
 * Nothing of the engine is imported here: the page's bundle stays small and the weights never
 * touch the page's thread.
 */
import type { EngineSettings, FromWorker, LoadInfo, LocalErrorInfo, Progress, ToWorker, TokensResult } from "./protocol";

export type { EngineSettings, LoadInfo, LocalErrorInfo, Progress, TokensResult } from "./protocol";

/** Any URL works as the client's baseURL (requests never leave the page); this one says where they go. */
export const LOCAL_BASE_URL = "http://edgelm.local/v1";

export class LocalEngineError extends Error {
  readonly code: LocalErrorInfo["code"];
  constructor(info: LocalErrorInfo) {
    super(info.message);
    this.name = "LocalEngineError";
    this.code = info.code;
  }
}

export interface LocalEngineOptions {
  /** The GGUF's URL (relative URLs resolve against the page). */
  model: string;
  /** The worker script (default: edgelm-local-worker.js next to this bundle). */
  workerURL?: string | URL;
  /** The model id clients send as `model` (default: the file's name without .gguf). */
  modelId?: string;
  /** false: no Cache API, the file is downloaded on every load. Default true. */
  cache?: boolean;
  settings?: EngineSettings;
  /** Headers for the model's download, e.g. `{ authorization: "Bearer …" }` for a server with API keys. */
  headers?: Record<string, string>;
  onProgress?(p: Progress): void;
  /** Non-fatal news: the model could not be stored (quota), the server could not be asked … */
  onWarning?(message: string): void;
}

export interface LocalEngine {
  /** Resolves once the model is loaded; rejects with a LocalEngineError (no_wasm_simd, no_memory, truncated …). */
  ready: Promise<LoadInfo>;
  /** A fetch for `createClient({ fetch })`: POST /v1/chat/completions, /v1/completions, GET /v1/models, /health. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** Token ids straight from the generator (tests, benchmarks). */
  tokens(prompt: number[], opts: { maxTokens: number; temperature?: number; seed?: number }): Promise<TokensResult>;
  /** Stops the worker; the engine's memory goes with it. */
  close(): void;
}

interface Pending {
  respond(res: Response): void;
  fail(err: Error): void;
  body?: ReadableStreamDefaultController<Uint8Array>;
}

export function createLocalEngine(opts: LocalEngineOptions): LocalEngine {
  const workerURL = opts.workerURL ?? new URL("./edgelm-local-worker.js", import.meta.url);
  const worker = new Worker(workerURL, { type: "module", name: "edgelm-local" });
  const send = (msg: ToWorker) => worker.postMessage(msg);
  const requests = new Map<number, Pending>();
  const tokenCalls = new Map<number, { resolve(r: TokensResult): void; reject(e: Error): void }>();
  let nextId = 1;
  let closed = false;

  let settle!: { resolve(i: LoadInfo): void; reject(e: Error): void };
  const ready = new Promise<LoadInfo>((resolve, reject) => (settle = { resolve, reject }));
  // An app that only uses `fetch` must not see an unhandled rejection; a request made while loading gets the API's own 503.
  ready.catch(() => {});

  worker.addEventListener("error", (ev) => {
    const err = new LocalEngineError({ code: "internal", message: `the engine's worker failed: ${ev.message || "could not start it (is the worker script served?)"}` });
    settle.reject(err);
    for (const p of requests.values()) fail(p, err);
    requests.clear();
  });
  worker.addEventListener("message", (ev: MessageEvent<FromWorker>) => {
    const m = ev.data;
    switch (m.type) {
      case "progress":
        opts.onProgress?.(m.progress);
        return;
      case "warning":
        opts.onWarning?.(m.message);
        return;
      case "ready":
        settle.resolve(m.info);
        return;
      case "load-error":
        settle.reject(new LocalEngineError(m.error));
        return;
      case "response": {
        const p = requests.get(m.id);
        if (!p) return;
        const body = new ReadableStream<Uint8Array>({
          start: (c) => void (p.body = c),
          // The reader went away (client abort, break): the worker stops generating.
          cancel: () => {
            requests.delete(m.id);
            send({ type: "abort", id: m.id });
          },
        });
        p.respond(new Response(body, { status: m.status, statusText: m.statusText, headers: m.headers }));
        return;
      }
      case "chunk":
        requests.get(m.id)?.body?.enqueue(m.chunk);
        return;
      case "end": {
        const p = requests.get(m.id);
        requests.delete(m.id);
        p?.body?.close();
        return;
      }
      case "fetch-error": {
        const p = requests.get(m.id);
        requests.delete(m.id);
        if (p) fail(p, new TypeError(`edgelm/local: ${m.message}`));
        return;
      }
      case "tokens":
      case "tokens-error": {
        const t = tokenCalls.get(m.id);
        tokenCalls.delete(m.id);
        if (m.type === "tokens") t?.resolve(m.result);
        else t?.reject(new Error(m.message));
        return;
      }
    }
  });

  send({
    type: "load",
    url: new URL(opts.model, location.href).href,
    modelId: opts.modelId,
    cache: opts.cache,
    settings: opts.settings,
    headers: Object.entries(opts.headers ?? {}),
    kernelsBase: new URL(".", new URL(workerURL, location.href)).href,
  });

  function fail(p: Pending, err: Error) {
    if (p.body) p.body.error(err);
    else p.fail(err);
  }

  async function localFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    const req = new Request(input, init);
    if (closed) throw new TypeError("edgelm/local: the engine was closed");
    const signal = init.signal ?? req.signal;
    if (signal?.aborted) throw signal.reason ?? new DOMException("aborted", "AbortError");
    const id = nextId++;
    const body = req.method === "GET" || req.method === "HEAD" ? undefined : await req.text();
    return new Promise<Response>((respond, reject) => {
      requests.set(id, { respond, fail: reject });
      signal?.addEventListener(
        "abort",
        () => {
          const p = requests.get(id);
          requests.delete(id);
          send({ type: "abort", id });
          if (p) fail(p, signal.reason ?? new DOMException("aborted", "AbortError"));
        },
        { once: true },
      );
      send({ type: "fetch", id, url: req.url, method: req.method, headers: [...req.headers], body });
    });
  }

  return {
    ready,
    fetch: localFetch,
    tokens(prompt, o) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        tokenCalls.set(id, { resolve, reject });
        send({ type: "tokens", id, prompt, maxTokens: o.maxTokens, temperature: o.temperature ?? 0, seed: o.seed });
      });
    },
    close() {
      closed = true;
      worker.terminate();
      const err = new TypeError("edgelm/local: the engine was closed");
      for (const p of requests.values()) fail(p, err);
      requests.clear();
      settle.reject(err);
    },
  };
}
