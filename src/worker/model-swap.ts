/**
 * The isolate's served model, and replacing it while it serves (POST /admin/reload, or a change
 * seen behind MODEL_POINTER). Each model has a loader of its own (loader.ts); a swap loads the new
 * one beside the old, then points new requests at it, while generations that already chose the
 * old model finish on its weights. The old engine is let go once the last of them has ended.
 * Where MEMORY_LIMIT_MB cannot hold both engines, the swap drains first: new requests get the
 * loading path's 503 (with retry-after), the old model's work ends, the old engine is let go, and
 * only then does the new one load.
 *
 * The prefix cache lives in an engine's KV pool, so a new engine starts with an empty one: no
 * cached block of one model can serve a prompt on another.
 *
 * workerd runs nothing between requests, so everything here is driven by requests: the pointer is
 * looked at by the first request after each MODEL_POINTER_POLL_S, and a wait (for a drain) ticks
 * a timer of its own, as a request with nothing pending in its context would be cancelled.
 */
import type { ModelState, ServedModel } from "../api/index";
import type { Env, ExecutionContextLike, WorkerConfig } from "./env";
import { ModelLoader } from "./loader";
import { readModelPointer } from "./model-pointer";
import type { WorkerQueue } from "./queue";
import { objectVersion } from "./source";
import { engineBytesAt, mib, swapFit } from "./swap-memory";

const TICK_MS = 25;

export type SwapPhase = "idle" | "measuring" | "draining" | "loading";

/** What the last swap did: for /health, the admin response and the logs. */
export interface SwapResult {
  ok: boolean;
  trigger: "admin" | "pointer";
  key: string;
  /** The object's version (etag@uploaded/size) the swap found, null when it found none. */
  version: string | null;
  /** side_by_side: both engines fitted; drain_first: the old one was drained and let go before the new one loaded. */
  mode: "side_by_side" | "drain_first" | null;
  message: string;
  /** ISO time it ended, and how long it took. */
  at: string;
  ms: number;
}

/** A second swap while one runs: the caller tries again once it has ended. */
export class SwapInProgressError extends Error {
  override name = "SwapInProgressError";
}

/**
 * A swap waiting for the old model's work to end before it may load. Any request carries it on
 * once that work has ended: the one that started it may be gone by then (a client that hung up,
 * or a platform that ends its waitUntil), and an isolate must not stay draining forever.
 */
interface Drain {
  old: ServedModel;
  next: Slot;
  continued: boolean;
  finish(ok: boolean, message: string): SwapResult;
  result?: SwapResult;
}

/** One model: its loader and which object it is loaded from (the loader knows which upload). */
interface Slot {
  loader: ModelLoader;
  key: string;
}

export class ModelSwap {
  private active?: Slot;
  private phase: SwapPhase = "idle";
  private swapping?: Promise<SwapResult>;
  /** Set while draining for lack of memory: new requests see "loading" and get 503. */
  private draining?: string;
  private drain?: Drain;
  private last?: SwapResult;
  /** Generations running, by the model they run on. */
  private readonly running = new Map<ServedModel, number>();
  private readonly described = new WeakSet<ServedModel>();
  /** The pointer: when it was last looked at, and the first read (before any model is chosen). */
  private polledAt = -Infinity;
  private polling = false;
  private first?: Promise<void>;
  private firstFailure?: { message: string; attempts: number; at: number };

  constructor(
    private readonly cfg: WorkerConfig,
    private readonly queue: WorkerQueue,
    private readonly log: (line: string) => void = (l) => console.log(l),
    private readonly now: () => number = () => Date.now(),
  ) {
    if (!cfg.modelPointer) this.active = this.slot(cfg.modelKey);
  }

  /** What requests see: the serving model, its load, a drain, or the pointer's first read. */
  get state(): ModelState {
    if (this.draining) return { status: "loading", message: this.draining, progress: 0 };
    if (!this.active) {
      const f = this.firstFailure;
      if (f) return { status: "failed", message: f.message, retry: { mode: "backoff", attempts: f.attempts, at: f.at } };
      return { status: "loading", message: `reading the model pointer "${this.cfg.modelPointer}"`, progress: 0 };
    }
    const s = this.active.loader.state;
    if (s.status === "ready") this.describe(s.model, this.active);
    return s;
  }

  /** Called by every request: starts or retries the load, and looks at the pointer when due. Never throws. */
  start(env: Env, ctx: ExecutionContextLike): void {
    const slot = this.active;
    if (!slot) return this.readFirstPointer(env, ctx);
    slot.loader.start(env, ctx);
    this.continueDrain(env, ctx);
    this.poll(env, ctx);
  }

  /** Resolves when the model is no longer loading (or draining), after `ms`, or when `signal` aborts. */
  async waitReady(ms: number, signal: AbortSignal): Promise<void> {
    const deadline = this.now() + ms;
    while (this.state.status === "loading" && !signal.aborted && this.now() < deadline) await tick();
  }

  /** ApiDeps.onGenerationStart: counts each generation against its model until it has ended. */
  track(model: ServedModel, finished: Promise<void>): void {
    this.running.set(model, (this.running.get(model) ?? 0) + 1);
    void finished.then(() => {
      const n = (this.running.get(model) ?? 1) - 1;
      if (n > 0) this.running.set(model, n);
      else this.running.delete(model);
    });
  }

  /**
   * Loads `key` (default: the serving key, whose object may have been replaced) and makes it serve
   * new requests; resolves once it does, or with why not. Throws SwapInProgressError when a swap
   * (or the first pointer read) is under way.
   */
  reload(env: Env, ctx: ExecutionContextLike, key: string | undefined, trigger: SwapResult["trigger"]): Promise<SwapResult> {
    if (this.swapping || this.first) throw new SwapInProgressError("a model swap is already under way; try again when it has ended (see /health, swap)");
    // Two loads at once could hold three models' memory (the one loading is dropped, not stopped).
    if (this.active?.loader.state.status === "loading") throw new SwapInProgressError("the model is still loading; try again once /health is 200 (or has failed)");
    if (this.cfg.engine === "sharded") throw new Error("swapping the model in place is not supported with ENGINE = sharded: redeploy the shard Workers (docs/sharding.md)");
    const target = key ?? this.active?.key ?? this.cfg.modelKey;
    const swapping: Promise<SwapResult> = this.swap(env, ctx, target, trigger).finally(() => {
      // A drain carried on by another request has already cleared these, and another swap may run.
      if (this.swapping !== swapping) return;
      this.swapping = undefined;
      this.phase = "idle";
    });
    ctx.waitUntil(swapping);
    return (this.swapping = swapping);
  }

  private async swap(env: Env, ctx: ExecutionContextLike, key: string, trigger: SwapResult["trigger"]): Promise<SwapResult> {
    const t0 = this.now();
    const old = this.active;
    const oldModel = old?.loader.state.status === "ready" ? old.loader.state.model : undefined;
    let version: string | null = null;
    let mode: SwapResult["mode"] = null;
    const done = (ok: boolean, message: string): SwapResult => {
      this.last = { ok, trigger, key, version, mode, message, at: new Date(this.now()).toISOString(), ms: this.now() - t0 };
      this.log(`edgelm: swap (${trigger}) to ${key}: ${message}`);
      return this.last;
    };
    try {
      this.phase = "measuring";
      version = await objectVersion(env, key);
      if (version === null) return done(false, `there is no object "${key}" in the model bucket; ${old ? `${old.key} keeps serving` : "nothing changed"}`);
      const fit = swapFit(await engineBytesAt(env, key, this.cfg), oldModel?.engine, this.cfg.memoryLimitMB);
      const next = this.slot(key);
      mode = oldModel && !fit.fits ? "drain_first" : "side_by_side";
      if (oldModel && mode === "drain_first") {
        this.log(`edgelm: swap to ${key}: the new engine needs ${mib(fit.needBytes)} beside the serving ${mib(fit.heldBytes)}, over MEMORY_LIMIT_MB (${mib(fit.limitBytes)}): draining the old model first; new requests get 503 meanwhile`);
        this.phase = "draining";
        this.draining = `swapping the model: draining the old one before loading ${key} (both do not fit in MEMORY_LIMIT_MB)`;
        const drain: Drain = (this.drain = { old: oldModel, next, continued: false, finish: (ok, message) => ((version = next.loader.loadedVersion ?? version), done(ok, message)) });
        // This request ticks until the swap is over, carrying it on itself unless another request did.
        while (!drain.result) {
          this.continueDrain(env, ctx);
          await tick();
        }
        return drain.result;
      }
      this.phase = "loading";
      await this.load(next, env, ctx);
      const s = next.loader.state;
      if (s.status !== "ready") return done(false, `loading failed (${old?.key ?? "the old model"} keeps serving): ${s.status === "failed" ? s.message : "it did not finish"}`);
      version = next.loader.loadedVersion; // the upload read, should it have changed since the look above
      // Requests already queued chose the old model: it stays until they have started and ended.
      const queuedBefore = this.queue.entered;
      this.active = next;
      if (oldModel) ctx.waitUntil(until(() => this.queue.passed >= queuedBefore && !this.running.has(oldModel)).then(() => this.letGo(oldModel)));
      return done(true, `${s.model.id} now serves new requests from ${key} (beside the old one: ${mib(fit.heldBytes + fit.needBytes)} of ${mib(fit.limitBytes)})`);
    } catch (err) {
      return done(false, `${err instanceof Error ? err.message : String(err)}; ${old ? `${old.key} keeps serving` : "nothing changed"}`);
    }
  }

  /** Once the old model's work has ended (nobody new is admitted while draining, so the queue empties): let it go, then load. */
  private continueDrain(env: Env, ctx: ExecutionContextLike): void {
    const d = this.drain;
    if (!d || d.continued || this.running.has(d.old) || this.queue.depth > 0 || this.queue.running) return;
    d.continued = true;
    const loadNext = async () => {
      try {
        await this.letGo(d.old);
      } catch (err) {
        this.log(`edgelm: swap: closing the old engine failed (${err instanceof Error ? err.message : String(err)}); loading the new one anyway`);
      }
      this.active = d.next;
      this.draining = undefined;
      this.phase = "loading";
      await this.load(d.next, env, ctx);
      const s = d.next.loader.state;
      d.result =
        s.status === "ready"
          ? d.finish(true, `${s.model.id} now serves new requests from ${d.next.key} (drained first: two engines do not fit in MEMORY_LIMIT_MB)`)
          : d.finish(false, `loading failed (the old model was already let go; requests retry the new one): ${s.status === "failed" ? s.message : "it did not finish"}`);
      this.drain = undefined;
      this.swapping = undefined;
      this.phase = "idle";
    };
    ctx.waitUntil(loadNext());
  }

  /** The model's own loader, run to its end inside this request (it is kept alive with waitUntil as well). */
  private async load(slot: Slot, env: Env, ctx: ExecutionContextLike): Promise<void> {
    let run: Promise<unknown> | undefined;
    slot.loader.start(env, {
      waitUntil: (p) => {
        run = p;
        ctx.waitUntil(p);
      },
    });
    await run;
  }

  private async letGo(model: ServedModel): Promise<void> {
    await model.engine.close?.();
    this.log(`edgelm: swap: the old model's generations have ended; its engine is let go`);
  }

  /** Looks at the pointer (and the object it names) when due; a change starts a swap inside this request. */
  private poll(env: Env, ctx: ExecutionContextLike): void {
    const pointer = this.cfg.modelPointer;
    const slot = this.active;
    if (!pointer || !slot || this.swapping || this.polling || slot.loader.state.status === "loading") return;
    if (this.now() - this.polledAt < this.cfg.modelPointerPollS * 1000) return;
    this.polledAt = this.now();
    this.polling = true;
    const check = async () => {
      const key = await readModelPointer(env, pointer);
      const version = await objectVersion(env, key);
      if (key === slot.key && version === slot.loader.loadedVersion) return;
      if (version === null) return this.log(`edgelm: MODEL_POINTER "${pointer}" names "${key}", which is not in the bucket: ${slot.key} keeps serving`);
      if (this.swapping || this.active !== slot) return;
      this.log(`edgelm: MODEL_POINTER "${pointer}" now names ${key} (${version}); serving ${slot.key} (${slot.loader.loadedVersion ?? "version unknown"}): swapping`);
      await this.reload(env, ctx, key, "pointer");
    };
    ctx.waitUntil(
      check()
        .catch((err) => this.log(`edgelm: looking at MODEL_POINTER "${pointer}" failed (${err instanceof Error ? err.message : String(err)}); ${slot.key} keeps serving`))
        .finally(() => (this.polling = false)),
    );
  }

  /** With MODEL_POINTER, the first model is the one it names; a failed read is tried again after LOAD_RETRY_MS. */
  private readFirstPointer(env: Env, ctx: ExecutionContextLike): void {
    const pointer = this.cfg.modelPointer!;
    if (this.first || (this.firstFailure && this.now() < this.firstFailure.at)) return;
    const read = async () => {
      try {
        const key = await readModelPointer(env, pointer);
        this.firstFailure = undefined;
        this.polledAt = this.now();
        this.log(`edgelm: MODEL_POINTER "${pointer}" names ${key}`);
        this.active = this.slot(key);
        this.active.loader.start(env, ctx);
      } catch (err) {
        const attempts = (this.firstFailure?.attempts ?? 0) + 1;
        const message = `reading the model pointer "${pointer}" failed: ${err instanceof Error ? err.message : String(err)}`;
        this.firstFailure = { message, attempts, at: this.now() + this.cfg.loadRetryMs };
        this.log(`edgelm: ${message} (attempt ${attempts}; next in ${(this.cfg.loadRetryMs / 1000).toFixed(1)} s)`);
      }
    };
    ctx.waitUntil((this.first = read().finally(() => (this.first = undefined))));
  }

  private slot(key: string): Slot {
    return { loader: new ModelLoader({ ...this.cfg, modelKey: key }, this.log, this.now), key };
  }

  /** /health's view of the model's identity and of swaps, read live from the served model's info. */
  private describe(model: ServedModel, slot: Slot): void {
    if (this.described.has(model)) return;
    this.described.add(model);
    // A batching engine (the sharded coordinator's step scheduler) runs up to its batch at once; replicas, MAX_BATCH each (replica-set.ts).
    this.queue.configure({ maxRunning: model.engine.liveStats?.().batch?.maxBatch ?? 1 });
    const info = (model.info ??= {});
    Object.defineProperties(info, {
      model_key: { enumerable: true, value: slot.key },
      model_version: { enumerable: true, value: slot.loader.loadedVersion },
      swap: { enumerable: true, get: () => this.report() },
    });
  }

  private report() {
    const pointer = this.cfg.modelPointer;
    return {
      state: this.phase,
      last: this.last ?? null,
      memory_limit_mb: this.cfg.memoryLimitMB,
      pointer: pointer ? { key: pointer, poll_s: this.cfg.modelPointerPollS, checked_at: Number.isFinite(this.polledAt) ? new Date(this.polledAt).toISOString() : null } : null,
    };
  }
}

const tick = () => new Promise((r) => setTimeout(r, TICK_MS));

async function until(done: () => boolean): Promise<void> {
  while (!done()) await tick();
}
