/**
 * The model, once per isolate: the first request starts streaming the GGUF into the engine (kept
 * alive with waitUntil), every request reads the state, and generation requests may wait for it,
 * bounded. Progress goes to the logs (every 10%) and to /health. A failed load is retried by a
 * later request after a pause, so uploading a missing object fixes a running deployment.
 */
import { buildServedModel, readModelFacts, type LoadedModel, type ModelState, type ServedModel } from "../api/index";
import type { Metadata } from "../gguf/index";
import { loadEngineFromStream } from "./engines";
import type { Env, ExecutionContextLike, WorkerConfig } from "./env";
import { loadShardedEngine, shardCounters } from "./sharded";
import { openModelObject } from "./source";

/** A failed load is tried again by the first request after this pause. */
export const RETRY_FAILED_MS = 30_000;
/** How often a waiting request looks at the state (polling keeps each request in its own I/O context). */
const WAIT_POLL_MS = 25;
/** Share of the progress bar that reading the weights takes; the tokenizer is the rest. */
const WEIGHTS_SHARE = 0.9;

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export class ModelLoader {
  private current: ModelState = { status: "loading", message: "waiting for the first request to start loading", progress: 0 };
  private running = false;
  private failedAt = 0;

  constructor(
    private readonly cfg: WorkerConfig,
    private readonly log: (line: string) => void = (l) => console.log(l),
    private readonly now: () => number = () => Date.now(),
  ) {}

  get state(): ModelState {
    return this.current;
  }

  /** Starts loading unless it is running, done, or failed too recently. Never throws. */
  start(env: Env, ctx: ExecutionContextLike): void {
    if (this.running || this.current.status === "ready") return;
    if (this.current.status === "failed" && this.now() - this.failedAt < RETRY_FAILED_MS) return;
    this.running = true;
    const done = this.load(env).finally(() => (this.running = false));
    // The stream belongs to this request's I/O context: keep the context alive until it is read.
    ctx.waitUntil(done);
  }

  /** Resolves when the model is no longer loading, after `ms`, or when `signal` aborts — whichever is first. */
  async waitReady(ms: number, signal: AbortSignal): Promise<void> {
    const deadline = this.now() + ms;
    while (this.current.status === "loading" && !signal.aborted) {
      const left = deadline - this.now();
      if (left <= 0) return;
      await new Promise((r) => setTimeout(r, Math.min(WAIT_POLL_MS, left)));
    }
  }

  private async load(env: Env): Promise<void> {
    const { modelKey, engine } = this.cfg;
    const t0 = this.now();
    try {
      if (engine === "sharded") return await this.loadSharded(env, t0);
      this.current = { status: "loading", message: `opening ${modelKey}`, progress: 0 };
      const obj = await openModelObject(env, modelKey);
      this.log(`edgelm: loading ${modelKey}${obj.size ? ` (${mb(obj.size)})` : ""} from ${obj.source} into the ${engine} engine`);
      let nextLog = 0.1;
      const loaded = await loadEngineFromStream(engine, obj.body, {
        size: obj.size,
        kernels: this.cfg.kernels,
        onProgress: (read, total) => {
          const f = total > 0 ? Math.min(1, read / total) : 0;
          this.current = { status: "loading", message: `reading the weights: ${mb(read)} of ${mb(total)}`, progress: Math.round(WEIGHTS_SHARE * f * 1000) / 1000 };
          if (f >= nextLog) {
            this.log(`edgelm: loading ${modelKey}: ${Math.floor(f * 100)}% (${mb(read)} of ${mb(total)}, ${((this.now() - t0) / 1000).toFixed(1)} s)`);
            nextLog = Math.floor(f * 10) / 10 + 0.1;
          }
        },
      });
      this.current = { status: "loading", message: "building the tokenizer from the GGUF vocabulary", progress: WEIGHTS_SHARE };
      const model = this.served(loaded.metadata, { engine: loaded.engine, source: obj.source, loadMs: this.now() - t0 });
      this.current = { status: "ready", model };
      this.log(`edgelm: ${model.id} ready (${engine} engine, chat template ${model.chatTemplate ?? "none"}) in ${((this.now() - t0) / 1000).toFixed(1)} s`);
    } catch (err) {
      this.failedAt = this.now();
      const message = err instanceof Error ? err.message : String(err);
      this.current = { status: "failed", message };
      this.log(`edgelm: loading ${modelKey} failed: ${message}`);
    }
  }

  /** ENGINE = "sharded": the plan and header from R2, the layers in shard Workers (docs/sharding.md). */
  private async loadSharded(env: Env, t0: number): Promise<void> {
    this.current = { status: "loading", message: `reading the shard plan and header of ${this.cfg.modelKey}`, progress: 0 };
    const { engine, metadata, admit } = await loadShardedEngine(env, this.cfg.modelKey, this.cfg.prefillChunkTokens, this.log);
    const model = this.served(metadata, { engine, source: "r2 (sharded)", loadMs: this.now() - t0, admit });
    // Read live by /health (spread copies a getter's current value): invocations and subrequests so far.
    Object.defineProperty(model.info!, "sharding", { enumerable: true, get: () => shardCounters(engine) });
    this.current = { status: "ready", model };
    this.log(`edgelm: ${model.id} ready (sharded engine, chat template ${model.chatTemplate ?? "none"}) in ${((this.now() - t0) / 1000).toFixed(1)} s`);
  }

  private served(metadata: Metadata, loaded: Omit<LoadedModel, "file" | "id">): ServedModel {
    const facts = readModelFacts(metadata, { override: this.cfg.chatTemplate, hint: "set CHAT_TEMPLATE", log: (line) => this.log(`edgelm: ${line}`) });
    return buildServedModel(facts, { ...loaded, file: this.cfg.modelKey, id: this.cfg.modelId });
  }
}
