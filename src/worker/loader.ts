/**
 * The model, once per isolate: the first request starts streaming the GGUF into the engine (kept
 * alive with waitUntil), every request reads the state, and generation requests may wait for it,
 * bounded. Progress goes to the logs (every 10%) and to /health.
 *
 * A failed load recovers without a redeploy, driven by requests (workerd has no timers that outlive
 * a request, and alarms would need a Durable Object): a missing or unreadable object is tried again
 * by the first request after a doubling pause (LOAD_RETRY_MS, at most LOAD_RETRY_MAX_MS); a file
 * found invalid is tried again only once a cheap head() shows a new upload (load-retry.ts says why).
 */
import { buildServedModel, readModelFacts, withBatching, type LoadedModel, type LoadRetry, type ModelState, type ServedModel } from "../api/index";
import { integrityOfFailure, manifestPathFor, type Metadata } from "../gguf/index";
import { loadEngineFromStream } from "./engines";
import type { Env, ExecutionContextLike, WorkerConfig } from "./env";
import { manifestCheckFor } from "./integrity";
import { backoffMs, retriesOnItsOwn } from "./load-retry";
import { embeddingHashesKeyOf } from "../shard/deploy";
import { liveShardInfo, loadShardedEngine, planKeyFor } from "./sharded";
import { replicaChooser } from "./shard-replicas";
import { objectVersion, openModelObject } from "./source";

/** How often a waiting request looks at the state (polling keeps each request in its own I/O context). */
const WAIT_POLL_MS = 25;
/**
 * How often a generation waiting for a batched step looks for its outcome (and runs the step when
 * it is due): the scheduler's polled mode, because workerd runs a continuation in the context of
 * the request that resolved it (src/api/step-scheduler.ts). A look costs microseconds.
 */
export const STEP_POLL_MS = 1;
/** Share of the progress bar that reading the weights takes; the tokenizer is the rest. */
const WEIGHTS_SHARE = 0.9;

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** The GGUF's upload and its manifest's, as one version (null: neither is there). */
const uploads = (model: string | null, manifest: string | null): string | null => (model === null && manifest === null ? null : `${model} + ${manifest}`);

/** The last failure, and what brings the next attempt. */
interface Failure extends LoadRetry {
  /** Failures in a row: the backoff grows with them. */
  streak: number;
  /** The upload that was found invalid (null: none was there, or the source cannot tell). */
  version: string | null;
}

export class ModelLoader {
  private current: ModelState = { status: "loading", message: "waiting for the first request to start loading", progress: 0 };
  private running = false;
  private attempts = 0;
  private failure?: Failure;
  /** The object-change check: one at a time, and not more often than LOAD_RETRY_MS. */
  private checking = false;
  private checkedAt = -Infinity;
  /** Which upload of the object the last load read (null: the source cannot tell): /health and model swaps compare it. */
  loadedVersion: string | null = null;

  constructor(
    private readonly cfg: WorkerConfig,
    private readonly log: (line: string) => void = (l) => console.log(l),
    private readonly now: () => number = () => Date.now(),
  ) {}

  get state(): ModelState {
    return this.current;
  }

  /** Starts loading unless it is running, done, or failed and not due again yet. Never throws. */
  start(env: Env, ctx: ExecutionContextLike): void {
    if (this.running || this.current.status === "ready") return;
    const f = this.failure;
    if (f?.mode === "backoff" && this.now() < f.at!) return;
    if (f?.mode === "object_change") return this.checkForNewUpload(env, ctx, f);
    // The stream belongs to this request's I/O context: keep the context alive until it is read.
    ctx.waitUntil(this.run(env));
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

  private run(env: Env): Promise<void> {
    this.running = true;
    return this.load(env).finally(() => (this.running = false));
  }

  private checkForNewUpload(env: Env, ctx: ExecutionContextLike, f: Failure): void {
    if (this.checking || this.now() - this.checkedAt < this.cfg.loadRetryMs) return;
    this.checking = true;
    this.checkedAt = this.now();
    const check = this.version(env).then(
      (v) => {
        if (v === f.version || this.running || this.failure !== f) return;
        this.log(`edgelm: ${this.cfg.modelKey} was replaced since it was found invalid: loading it again`);
        return this.run(env);
      },
      // A lookup that fails says nothing about the file: the next request looks again.
      () => {},
    );
    // The load, when one starts, runs inside this request's context like any other.
    ctx.waitUntil(check.finally(() => (this.checking = false)));
  }

  /** The upload(s) a load would read now: the GGUF, and in sharded mode its plan and embedding row hashes too. */
  private async version(env: Env): Promise<string | null> {
    const { modelKey, engine } = this.cfg;
    // A new manifest is a reason to try again as much as a new GGUF is.
    if (engine !== "sharded") return uploads(await objectVersion(env, modelKey), await objectVersion(env, manifestPathFor(modelKey)));
    // The row hashes' key as edgelm shard-plan names it: a fresh upload of them alone (after a tampered one) is a reason to try again too.
    const [plan, model, rows] = await Promise.all([objectVersion(env, planKeyFor(env, modelKey)), objectVersion(env, modelKey), objectVersion(env, embeddingHashesKeyOf(modelKey))]);
    return plan === null && model === null ? null : `${plan} + ${model} + ${rows}`;
  }

  private async load(env: Env): Promise<void> {
    const { modelKey, engine } = this.cfg;
    const t0 = this.now();
    this.attempts++;
    let version: string | null = null;
    try {
      if (engine === "sharded") {
        this.current = { status: "loading", message: `reading the shard plan and header of ${modelKey}`, progress: 0 };
        version = this.loadedVersion = await this.version(env);
        return await this.loadSharded(env, t0);
      }
      this.current = { status: "loading", message: `opening ${modelKey}`, progress: 0 };
      const { check, version: manifestVersion } = await manifestCheckFor(env, modelKey, this.cfg.requireManifest);
      const obj = await openModelObject(env, modelKey);
      // The model's own upload is what a swap compares; a failure waits for it or the manifest to change.
      this.loadedVersion = obj.version ?? null;
      version = uploads(this.loadedVersion, manifestVersion);
      const verifying = check ? `verifying against ${check.where}` : "no manifest: unverified";
      this.log(`edgelm: loading ${modelKey}${obj.size ? ` (${mb(obj.size)})` : ""} from ${obj.source} into the ${engine} engine (${verifying})`);
      let nextLog = 0.1;
      const loaded = await loadEngineFromStream(engine, obj.body, {
        size: obj.size,
        kernels: this.cfg.kernels,
        verify: check,
        modelIdentity: obj.version,
        kvBudgetMB: this.cfg.kvBudgetMB,
        maxBatch: this.cfg.maxBatch,
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
      const served = withBatching(loaded.engine, { maxBatch: this.cfg.maxBatch, maxBatchTokens: this.cfg.maxBatchTokens, pollMs: STEP_POLL_MS });
      const model = this.served(loaded.metadata, { engine: served, source: obj.source, loadMs: this.now() - t0, integrity: check ? "verified" : "unverified" });
      this.ready(model, engine, t0);
    } catch (err) {
      this.failed(err, version);
    }
  }

  private failed(err: unknown, version: string | null): void {
    const message = err instanceof Error ? err.message : String(err);
    const streak = (this.failure?.streak ?? 0) + 1;
    const again = retriesOnItsOwn(err);
    const wait = backoffMs(streak, this.cfg.loadRetryMs, this.cfg.loadRetryMaxMs);
    this.failure = again
      ? { mode: "backoff", attempts: this.attempts, at: this.now() + wait, streak, version }
      : { mode: "object_change", attempts: this.attempts, streak, version };
    const { mode, attempts, at } = this.failure;
    const integrity = integrityOfFailure(err);
    this.current = { status: "failed", message, retry: { mode, attempts, ...(at === undefined ? {} : { at }) }, ...(integrity ? { integrity } : {}) };
    const next = again ? `next attempt in ${(wait / 1000).toFixed(1)} s` : "the file is invalid: not retried until the object changes";
    this.log(`edgelm: loading ${this.cfg.modelKey} failed (attempt ${this.attempts}; ${next}): ${message}`);
  }

  private ready(model: ServedModel, engine: string, t0: number): void {
    this.failure = undefined;
    this.current = { status: "ready", model };
    this.log(`edgelm: ${model.id} ready (${engine} engine, chat template ${model.chatTemplate ?? "none"}) in ${((this.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** ENGINE = "sharded": the plan and header from R2, the layers in shard Workers (docs/sharding.md). */
  private async loadSharded(env: Env, t0: number): Promise<void> {
    const batching = { maxBatch: this.cfg.maxBatch, maxBatchTokens: this.cfg.maxBatchTokens, pollMs: STEP_POLL_MS };
    const { engines, served, replicaSet, metadata, admit, integrity } = await loadShardedEngine(env, this.cfg.modelKey, this.cfg.prefillChunkTokens, this.log, this.cfg.requireManifest, batching);
    const model = this.served(metadata, { engine: served, source: "r2 (sharded)", loadMs: this.now() - t0, admit, integrity });
    // Each generation goes through one replica's pipeline, chosen by its session affinity (and health).
    if (replicaSet) model.engineFor = replicaChooser(replicaSet);
    // Read live by /health (spread copies a getter's current value).
    liveShardInfo(model.info!, engines, replicaSet);
    this.ready(model, "sharded", t0);
  }

  private served(metadata: Metadata, loaded: Omit<LoadedModel, "file" | "id">): ServedModel {
    const facts = readModelFacts(metadata, { override: this.cfg.chatTemplate, hint: "set CHAT_TEMPLATE", log: (line) => this.log(`edgelm: ${line}`) });
    return buildServedModel(facts, { ...loaded, file: this.cfg.modelKey, id: this.cfg.modelId });
  }
}
