/**
 * Node host for the platform-neutral API: a `node:http` server that turns each IncomingMessage into
 * a web Request, calls `handleRequest`, and streams the Response back. It listens before the model
 * is loaded so /health can report progress, and a client disconnect aborts that client's generation.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import { stat } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { basename } from "node:path";
import { buildServedModel, chooseEngine, modelIdFromFile, GenerationQueue, handleRequest, queueCapacity, readModelFacts, RequestLines, withBatching, type ApiDeps, type BatchingOptions, type ModelState, type ServedModel } from "../api/index";
import { integrityOfFailure, ManifestMissingError, manifestPathFor } from "../gguf/manifest";
import { manifestCheckBeside, openGGUF } from "../gguf/node";
import type { ChatTemplateName } from "../tokenizer/node";
import { loadEngine, NODE_ENGINES, type NodeEngineName } from "./engines";
import { diskModelFile } from "./model-file";
import { InFlight, swapModel } from "./model-swap";
import { localPageAssets, playgroundPage } from "./playground";

export interface ServeOptions {
  modelPath: string;
  /** Default 127.0.0.1: only this machine can connect unless asked otherwise. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Default: the file name without `.gguf`. */
  modelId?: string;
  /** Default: the served-model builder's (wasm), as for the CLI and the Worker. */
  engine?: NodeEngineName;
  /** Threads of the wasm engine; default one per core (os.availableParallelism()). */
  threads?: number;
  /** Overrides the GGUF's `tokenizer.chat_template` (base models have none; synthetic ones get zephyr). */
  chatTemplate?: ChatTemplateName;
  corsOrigins?: "*" | readonly string[];
  /** Requests that may wait for the engine; more get 429. Default 16. */
  queueDepth?: number;
  /** Generations decoding together in batched steps (wasm engine); default DEFAULT_MAX_BATCH. 1: one at a time. */
  maxBatch?: number;
  /** Token rows per batched step, prompt parts included; default 64. */
  maxBatchTokens?: number;
  /** KV cache budget in MiB, shared by the running generations; default two full contexts. */
  kvBudgetMB?: number;
  /** Serve the GGUF at GET /v1/models/{id}/file (redistribution: docs/api.md). Default off. */
  serveModelFile?: boolean;
  /** Refuse a model without a manifest beside it (`<model>.gguf.manifest.json`), rather than serve it unverified. Default off. */
  requireManifest?: boolean;
  /** One line per request and lifecycle messages; default stderr. */
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  host: string;
  port: number;
  /** Resolves when the model is loaded; rejects when loading fails (the server keeps answering 503). */
  ready: Promise<ServedModel>;
  queue: GenerationQueue;
  /**
   * Loads the model file again (replace the file first) and swaps it in: running generations end
   * on the old weights, new requests get the new ones (model-swap.ts). `edgelm serve` does this
   * on SIGHUP.
   */
  reload(): Promise<ServedModel>;
  /** Stops listening, drops open connections and stops the engine's threads. */
  close(): Promise<void>;
}

/** Generations `edgelm serve` decodes together by default. */
export const DEFAULT_MAX_BATCH = 4;

type LoadOptions = { engine?: NodeEngineName; threads?: number; modelId?: string; chatTemplate?: ChatTemplateName; log?: (line: string) => void; requireManifest?: boolean } & Partial<BatchingOptions> & { kvBudgetMB?: number };

/**
 * Reads the tokenizer and chat template from the GGUF header, then loads the weights into the
 * engine; with `maxBatch` > 1 the engine serves through the batching scheduler.
 */
export async function loadServedModel(
  path: string,
  opts: LoadOptions,
  progress: (message: string, fraction: number) => void = () => {},
): Promise<ServedModel> {
  const engineName = chooseEngine(opts.engine, NODE_ENGINES);
  progress("reading the GGUF header", 0);
  // The manifest first: a truncated file is then refused as such, not as a header that points past its end.
  const verify = await manifestCheckBeside(path);
  if (!verify && opts.requireManifest) throw new ManifestMissingError(`--require-manifest: there is no manifest ${manifestPathFor(path)} beside the model (edgelm convert, synth and download write one)`);
  if (verify) verify.size((await stat(path)).size);
  const header = await openGGUF(path);
  await header.close();
  progress("building the tokenizer", 0.1);
  const facts = readModelFacts(header.metadata, { override: opts.chatTemplate, hint: "pass --chat-template", log: opts.log });
  opts.log?.(`edgelm serve: ${verify ? `verifying ${basename(path)} against ${verify.where}` : `no manifest beside ${basename(path)}: serving it unverified`}`);
  progress("loading the weights", 0.3);
  const batching: BatchingOptions = { maxBatch: opts.maxBatch ?? 1, maxBatchTokens: opts.maxBatchTokens };
  const engine = await loadEngine(path, engineName, { threads: opts.threads, maxBatch: batching.maxBatch, kvBudgetMB: opts.kvBudgetMB, verify });
  return buildServedModel(facts, { engine: withBatching(engine, batching), file: basename(path), id: opts.modelId, integrity: verify ? "verified" : "unverified" });
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const host = opts.host ?? "127.0.0.1";
  let state: ModelState = { status: "loading", message: "starting", progress: 0 };
  const queue = new GenerationQueue(opts.queueDepth ?? 16);
  const inflight = new InFlight();
  const lines = new RequestLines(log);
  const deps: ApiDeps = {
    model: () => state,
    queue,
    // Each generation is counted against the model it runs on, so a reload can wait for it.
    onGenerationStart: (req, finished, model) => {
      lines.generationStarted(req);
      inflight.add(model, finished);
    },
    onGenerationEnd: (req, summary) => lines.generationEnded(req, summary),
    corsOrigins: opts.corsOrigins ?? "*",
    modelFile: opts.serveModelFile ? diskModelFile(opts.modelPath, opts.modelId ?? modelIdFromFile(basename(opts.modelPath))) : undefined,
    page: playgroundPage(log),
    pageAssets: localPageAssets(),
  };
  const server = createServer(
    nodeListener(async (req) => {
      const id = lines.begin(req);
      const res = await handleRequest(req, deps);
      res.headers.set("x-request-id", id);
      lines.responded(req, res);
      return res;
    }, log),
  );
  await listen(server, opts.port ?? 8000, host);
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  const install = (model: ServedModel) => {
    queue.configure(queueCapacity(model.engine, { maxBatch }));
    state = { status: "ready", model };
  };
  const ready = loadServedModel(opts.modelPath, { ...opts, maxBatch, log }, (message, progress) => {
    state = { status: "loading", message, progress };
  }).then(
    (model) => {
      install(model);
      return model;
    },
    (err: Error) => {
      const integrity = integrityOfFailure(err);
      state = { status: "failed", message: err.message, ...(integrity ? { integrity } : {}) };
      throw err;
    },
  );
  ready.catch(() => {}); // the caller decides what a failed load means; never an unhandled rejection

  let swapping: Promise<ServedModel> | undefined;
  const reload = () =>
    (swapping ??= swapModel(
      {
        current: () => (state.status === "ready" ? state.model : undefined),
        load: () => loadServedModel(opts.modelPath, { ...opts, maxBatch, log }),
        install,
        pause: (message) => (state = { status: "loading", message, progress: 0 }),
        log,
      },
      opts.modelPath,
      inflight,
    )
      .catch((err: Error) => {
        // Drained for lack of memory and then failed: there is no model left to serve.
        if (state.status !== "ready") state = { status: "failed", message: `reload failed: ${err.message}` };
        throw err;
      })
      .finally(() => (swapping = undefined)));

  return {
    url,
    host,
    port,
    ready,
    queue,
    reload,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Open SSE streams would keep close() waiting forever.
        server.closeAllConnections();
      });
      // A load still running is not waited for: its threads do not keep the process alive.
      if (state.status === "ready") await state.model.engine.close?.();
      else void ready.then((m) => m.engine.close?.(), () => {});
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * A node:http listener around a web-standard handler (reusable for any Request → Response function).
 * A client that leaves before the response is written aborts the Request's signal; the handler
 * logs requests, this only what fails in writing.
 */
export function nodeListener(handler: (req: Request) => Promise<Response>, log: (line: string) => void = () => {}): RequestListener {
  return (req, res) => {
    const disconnect = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) disconnect.abort(new Error("client disconnected"));
    });
    serve(req, res, handler, disconnect.signal).catch((err: Error) => {
      // Only reached if writing itself failed; the handler turns its own errors into responses.
      log(`error serving ${req.method} ${req.url}: ${err.message}`);
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: "internal error", type: "server_error", param: null, code: null } }));
      } else res.destroy();
    });
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, handler: (req: Request) => Promise<Response>, signal: AbortSignal): Promise<void> {
  const body = requestBody(req);
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  let request: Request;
  try {
    // The handler routes on the path only; a fixed origin keeps odd Host headers from mattering.
    request = new Request(new URL(req.url ?? "/", "http://localhost"), {
      method: req.method,
      headers,
      body: hasBody ? body.stream : undefined,
      signal,
      // Required by undici for a streamed request body.
      duplex: "half",
    } as RequestInit);
  } catch (err) {
    // e.g. a method fetch forbids (TRACE, CONNECT): a client error, not a crash.
    res.writeHead(400, { "content-type": "application/json", connection: "close" });
    res.end(JSON.stringify({ error: { message: `bad request: ${(err as Error).message}`, type: "invalid_request_error", param: null, code: null } }));
    return;
  }
  const response = await handler(request);
  if (res.destroyed) {
    // The client left while the request waited or ran: nothing to write, but free the body's resources.
    await response.body?.cancel().catch(() => {});
    return;
  }
  const out: Record<string, string> = {};
  response.headers.forEach((v, k) => (out[k] = v));
  // An unread upload (e.g. 413 over the cap) can't be left on a keep-alive connection.
  if (body.abandoned() || (hasBody && !req.complete)) out.connection = "close";
  res.writeHead(response.status, out);
  if (!response.body || req.method === "HEAD") {
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const onClose = () => void reader.cancel(new Error("client disconnected")).catch(() => {});
  res.on("close", onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || res.destroyed) break;
      // Respect backpressure: a slow client should not make the server buffer the whole stream.
      if (!res.write(value)) await drainOrClose(res);
    }
  } finally {
    res.off("close", onClose);
  }
  res.end();
}

/** The request body as a web stream that pauses the socket when unread and stops (without destroying it) when cancelled. */
function requestBody(req: IncomingMessage): { stream: ReadableStream<Uint8Array>; abandoned: () => boolean } {
  let abandoned = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      req.pause();
      req.on("data", (chunk: Buffer) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) req.pause();
      });
      // After a cancel the controller is closed; late events must not throw from an emitter.
      req.on("end", () => {
        if (!abandoned) controller.close();
      });
      req.on("error", (err) => {
        if (!abandoned) controller.error(err);
      });
    },
    pull() {
      req.resume();
    },
    cancel() {
      abandoned = true;
      req.removeAllListeners("data");
      req.pause();
    },
  });
  return { stream, abandoned: () => abandoned };
}

/**
 * Resolves on whichever comes first and removes the other listener: left behind, one `close`
 * listener per backpressured write piled up on a long stream (Node warns at 11).
 */
export function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}
