/**
 * The on-device engine's Web Worker: loads the GGUF (cache or network, model-cache.ts) into the
 * wasm engine and answers the page's requests with the same OpenAI-compatible API the servers
 * run (src/api's handleRequest), so a chat streamed from here is byte for byte the SSE a server
 * would send. It runs off the page's thread because a forward pass blocks for tens of
 * milliseconds per token: on the page that would freeze scrolling and input.
 *
 * Kernel choice: like Node, the timed probe among the builds that pass the self-test. A browser's
 * clock advances while it computes (unlike workerd's), and browsers differ in which build is
 * fastest on which CPU (relaxed SIMD lowers to one instruction on some, to several on others),
 * so measuring is worth its few milliseconds; kernels.ts falls back to the first that passed if
 * the clock did not move.
 */
import { buildServedModel, GenerationQueue, handleRequest, modelIdFromFile, queueCapacity, readModelFacts, type ApiDeps, type ModelState } from "../api/index";
import { loadWasmEngineFromStream } from "../engine/index";
import { PREFERENCE, type BuildKind, type KernelModules } from "../engine/kernels";
import type { WasmEngine } from "../engine/wasm-engine";
import { generate } from "../generate/generator";
import type { GGUFHeader } from "../gguf/reader";
import type { Tokenizer } from "../tokenizer/index";
import { memoryError, missingCapability } from "./capabilities";
import { LocalLoadError, openModelBytes } from "./model-cache";
import type { FromWorker, LoadRequest, ToWorker, TokensRequest } from "./protocol";
import { unclampZeroDelayTimers } from "./zero-delay-timers";

interface WorkerScope {
  postMessage(msg: FromWorker, transfer?: Transferable[]): void;
  addEventListener(type: "message", fn: (ev: MessageEvent<ToWorker>) => void): void;
  location: { href: string };
}
const scope = self as unknown as WorkerScope;
unclampZeroDelayTimers(globalThis as unknown as Parameters<typeof unclampZeroDelayTimers>[0]);
const post = (msg: FromWorker, transfer?: Transferable[]) => scope.postMessage(msg, transfer);

let state: ModelState = { status: "loading", message: "the model is loading" };
let loaded: { engine: WasmEngine; tokenizer: Tokenizer } | undefined;
const queue = new GenerationQueue(16);
const deps: ApiDeps = { model: () => state, queue, corsOrigins: "*", clock: () => performance.now() };
const inFlight = new Map<number, AbortController>();

scope.addEventListener("message", (ev) => {
  const msg = ev.data;
  switch (msg.type) {
    case "load":
      void load(msg);
      return;
    case "fetch":
      void serve(msg.id, msg.url, msg.method, msg.headers, msg.body);
      return;
    case "abort":
      inFlight.get(msg.id)?.abort(new Error("aborted by the page"));
      return;
    case "tokens":
      void tokens(msg);
      return;
  }
});

/** Every build next to this script, compiled here (browsers compile wasm from bytes); one that fails to compile is left out, saying why. */
async function compileKernels(base: string): Promise<{ modules: KernelModules; unavailable: Partial<Record<BuildKind, string>> }> {
  const modules: KernelModules = {};
  const unavailable: Partial<Record<BuildKind, string>> = {};
  await Promise.all(
    PREFERENCE.map(async (kind) => {
      const url = new URL(`kernels-${kind}.wasm`, base).href;
      try {
        const res = await fetch(url);
        if (!res.ok) throw new Error(`HTTP ${res.status} for ${url}`);
        modules[kind] = await WebAssembly.compile(await res.arrayBuffer());
      } catch (e) {
        unavailable[kind] = (e as Error).message.split("\n")[0];
      }
    }),
  );
  return { modules, unavailable };
}

async function load(req: LoadRequest): Promise<void> {
  const t0 = performance.now();
  try {
    const missing = missingCapability();
    if (missing) throw new LocalLoadError(missing);
    const kernels = compileKernels(req.kernelsBase ?? scope.location.href);
    const bytes = await openModelBytes(req.url, { cache: req.cache !== false, headers: req.headers, onProgress: (progress) => post({ type: "progress", progress }) });
    const { modules, unavailable } = await kernels;
    if (!modules.scalar) throw new LocalLoadError({ code: "internal", message: `the kernels could not be loaded: ${unavailable.scalar}` });
    let header: GGUFHeader | undefined;
    const settings = req.settings ?? {};
    const engineLoad = loadWasmEngineFromStream(bytes.stream, {
      modules,
      unavailable,
      choose: "timed",
      force: settings.kernels,
      size: bytes.size || undefined,
      contextLength: settings.contextLength,
      ...(settings.kvBudgetMB !== undefined ? { kvBudgetMB: settings.kvBudgetMB } : { sequences: 1 }),
      onHeader: (h) => (header = h),
    });
    const engine = await engineLoad.catch(async (e: unknown) => {
      // Memory runs out at the header, long before the download ends: say so at once.
      if (memoryError(e)) throw e;
      // A body cut short fails the engine as "unexpected end" or as a network error; the cache's verdict names it.
      throw await bytes.stored.then(() => e, (verdict: unknown) => verdict);
    });
    // The engine is used only once the whole file is known good: a cut-off body rejects `stored`.
    const stored = await bytes.stored;
    const warnings = [...bytes.warnings, ...(stored.warning ? [stored.warning] : [])];
    for (const w of warnings) post({ type: "warning", message: w });
    const facts = readModelFacts(header!.metadata, { hint: "the GGUF has no chat template", log: (line) => post({ type: "warning", message: line }) });
    const file = new URL(req.url).pathname;
    const model = buildServedModel(facts, { engine, file: modelIdFromFile(file) + ".gguf", id: req.modelId, source: bytes.source, loadMs: performance.now() - t0 });
    queue.configure(queueCapacity(engine, { maxBatch: 1 }));
    loaded = { engine, tokenizer: facts.tokenizer };
    state = { status: "ready", model };
    post({
      type: "ready",
      info: { modelId: model.id, source: bytes.source, cached: stored.cached, bytes: bytes.size, etag: bytes.etag, engine: engine.name, loadMs: performance.now() - t0, warnings },
    });
  } catch (e) {
    const info = e instanceof LocalLoadError ? e.info : memoryError(e) ?? truncation(e) ?? { code: "bad_model" as const, message: (e as Error)?.message ?? String(e) };
    state = { status: "failed", message: info.message };
    post({ type: "load-error", error: info });
  }
}

/** A stream that broke off mid-file reaches the GGUF reader as "unexpected end" or as the network's error. */
function truncation(e: unknown): { code: "truncated"; message: string } | undefined {
  const msg = (e as Error)?.message ?? String(e);
  if (/unexpected end|ended after|network error|Failed to fetch|ERR_/i.test(msg)) return { code: "truncated", message: `the model's download broke off (${msg}): it is not used or stored` };
  return undefined;
}

async function serve(id: number, url: string, method: string, headers: [string, string][], body: string | undefined): Promise<void> {
  const ac = new AbortController();
  inFlight.set(id, ac);
  try {
    const res = await handleRequest(new Request(url, { method, headers, body, signal: ac.signal }), deps);
    post({ type: "response", id, status: res.status, statusText: res.statusText, headers: [...res.headers] });
    if (res.body) {
      const reader = res.body.getReader();
      ac.signal.addEventListener("abort", () => void reader.cancel(ac.signal.reason).catch(() => {}), { once: true });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        // Copied, not transferred: a chunk may be a view of a buffer its producer reuses.
        post({ type: "chunk", id, chunk: value });
      }
    }
    post({ type: "end", id });
  } catch (e) {
    post({ type: "fetch-error", id, message: (e as Error)?.message ?? String(e) });
  } finally {
    inFlight.delete(id);
  }
}

async function tokens(req: TokensRequest): Promise<void> {
  try {
    if (!loaded) throw new Error("the model is not loaded");
    const ids: number[] = [];
    let first = 0, last = 0, start = performance.now();
    for await (const ev of generate(loaded.engine, loaded.tokenizer, { prompt: req.prompt, maxTokens: req.maxTokens, sampling: { temperature: req.temperature }, seed: req.seed ?? 0, stopTokenIds: [] })) {
      if (ev.type !== "token") continue;
      ids.push(ev.id);
      last = performance.now();
      if (ids.length === 1) first = last;
    }
    post({ type: "tokens", id: req.id, result: { ids, prefillMs: first - start, decodeMs: last - first } });
  } catch (e) {
    post({ type: "tokens-error", id: req.id, message: (e as Error)?.message ?? String(e) });
  }
}
