/**
 * A shard's Worker script (one per shard: Durable Object instances of one class may share an
 * isolate, so shards must be separate scripts to get 128 MB each). The coordinator reaches the
 * single instance `idFromName("shard")` of this script's `Shard` class over RPC:
 *
 *   session(requests) → replies   one long-lived frame stream per coordinator request
 *   call(frame) → frame           one frame per RPC (transport "rpc")
 *
 * The weights load on first use (range reads of the one GGUF in R2, by the plan stored beside
 * it) into a WebAssembly.Memory capped at the plan's page budget. The instance keeps the
 * runtime — and so its sequences' KV caches — for as long as the platform keeps it alive.
 */
import { DurableObject } from "cloudflare:workers";
import fusedKernels from "../../build/kernels-relaxed-fused.wasm";
import relaxedKernels from "../../build/kernels-relaxed.wasm";
import scalarKernels from "../../build/kernels-scalar.wasm";
import simdKernels from "../../build/kernels-simd.wasm";
import { parseBuildKind } from "../engine/kernels";
import { integrityOfFailure } from "../gguf/manifest";
import type { ShardPlan } from "./plan";
import { decodeFrame, encodeFrame, FrameReader, type ShardRequest } from "./protocol";
import { ShardRuntime, type RangeSource } from "./runtime";

interface R2Range {
  get(key: string, opts?: { range?: { offset: number; length: number } }): Promise<{ size: number; text(): Promise<string>; arrayBuffer(): Promise<ArrayBuffer> } | null>;
  head(key: string): Promise<{ etag: string } | null>;
}

/** Bytes per R2 range read while loading (each one is a subrequest of the shard's invocation). */
const READ_PIECE = 8 << 20;

export interface ShardEnv {
  MODELS: R2Range;
  MODEL_KEY: string;
  PLAN_KEY?: string;
  SHARD_INDEX: string;
  /** auto (default) | relaxed-fused | relaxed | simd | scalar, as the edge Worker's KERNELS. */
  KERNELS?: string;
  /** "true": refuse a plan without hashes for this shard's ranges (as the edge Worker's REQUIRE_MANIFEST). */
  REQUIRE_MANIFEST?: string;
  /** After a load found the file or plan wrong, how often (ms) a frame may look whether either was replaced (default 10000). */
  LOAD_RETRY_MS?: string;
  /** Tests only: after this many frames, the object is reset by the platform (ctx.abort), once. */
  TEST_CRASH_AFTER_FRAMES?: string;
  /** Tests only: the Nth run frame that carries several sequences finds its first sequence forgotten (as if evicted), once per instance. */
  TEST_FORGET_AT_RUN?: string;
  /** Tests only: every load first waits this long (a slow cold start). */
  TEST_LOAD_DELAY_MS?: string;
  /** Tests only: this many loads of the instance fail before one succeeds ("always": none does). */
  TEST_LOAD_FAILURES?: string;
  /** Tests only: every run frame is answered this long after it ran (a slow shard: a coordinator's step spends its time awaiting I/O). */
  TEST_RUN_DELAY_MS?: string;
}

/** "true" or "false" (unset: false), as the edge Worker reads it; anything else names the var. */
function requireManifestVar(v: string | undefined): boolean {
  const s = v?.trim().toLowerCase();
  if (!s || s === "false") return false;
  if (s === "true") return true;
  throw new Error(`var REQUIRE_MANIFEST must be "true" or "false", got ${JSON.stringify(v)}`);
}

const planKeyOf = (env: ShardEnv) => env.PLAN_KEY || `${env.MODEL_KEY}.plan.json`;

/** Which uploads of the GGUF and the plan a load reads now (their etags): a failure found in them lasts until this changes. */
async function uploadsVersion(env: ShardEnv): Promise<string> {
  const [model, plan] = await Promise.all([env.MODELS.head(env.MODEL_KEY), env.MODELS.head(planKeyOf(env))]);
  return `${model?.etag ?? "none"} + ${plan?.etag ?? "none"}`;
}

/** Default of LOAD_RETRY_MS: the shard has no request of its own to wait in, so a cheap head() per 10 s at most. */
const DEFAULT_RECHECK_MS = 10_000;

/** LOAD_RETRY_MS, milliseconds ≥ 0 (unset: the default); anything else names the var. */
function recheckMsVar(v: string | undefined): number {
  if (v === undefined || v.trim() === "") return DEFAULT_RECHECK_MS;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`var LOAD_RETRY_MS must be a number of milliseconds ≥ 0, got ${JSON.stringify(v)}`);
  return n;
}

async function loadRuntime(env: ShardEnv): Promise<ShardRuntime> {
  const planKey = planKeyOf(env);
  const planObj = await env.MODELS.get(planKey);
  if (!planObj) throw new Error(`the shard plan "${planKey}" is not in the R2 bucket bound as MODELS (edgelm shard-plan --out writes it; upload plan.json there)`);
  const plan = JSON.parse(await planObj.text()) as ShardPlan;
  const index = Number(env.SHARD_INDEX);
  if (plan.model.key !== env.MODEL_KEY) throw new Error(`the plan is for "${plan.model.key}", this shard serves "${env.MODEL_KEY}"`);
  // Pieces of at most READ_PIECE bytes, each read whole (arrayBuffer) and handed on before the
  // next is requested: JS heap holds one piece at a time. Streaming R2 bodies straight through
  // stalled local (Miniflare) R2 in some runs; whole small reads never did.
  const source: RangeSource = {
    async read(offset, length) {
      let at = offset;
      const end = offset + length;
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          if (at >= end) return c.close();
          const n = Math.min(READ_PIECE, end - at);
          const obj = await env.MODELS.get(env.MODEL_KEY, { range: { offset: at, length: n } });
          if (!obj) throw new Error(`the object "${env.MODEL_KEY}" is not in the R2 bucket bound as MODELS`);
          if (obj.size !== plan.model.size) throw new Error(`"${env.MODEL_KEY}" is ${obj.size} bytes, the plan was made for ${plan.model.size}: re-run edgelm shard-plan`);
          c.enqueue(new Uint8Array(await obj.arrayBuffer()));
          at += n;
        },
      });
    },
  };
  // The first build in preference order that passes the self-test (a Worker cannot time a probe).
  const rt = await ShardRuntime.load(plan, index, source, {
    modules: { "relaxed-fused": fusedKernels, relaxed: relaxedKernels, simd: simdKernels, scalar: scalarKernels },
    force: parseBuildKind(env.KERNELS, "var KERNELS"),
    choose: "first",
    requireHashes: requireManifestVar(env.REQUIRE_MANIFEST),
  });
  const i = rt.info();
  console.log(`edgelm shard ${index} (${i.script}): loaded in ${i.loadMs} ms, wasm ${(i.memoryBytes / 2 ** 20).toFixed(1)} of ${(i.maxBytes / 2 ** 20).toFixed(1)} MiB, ${i.kernels} kernels`);
  return rt;
}

/** The chaos tests' faults at load (TEST_LOAD_DELAY_MS, TEST_LOAD_FAILURES); nothing when unset. */
async function injectedLoadFault(env: ShardEnv, attempt: number): Promise<void> {
  const delay = Number(env.TEST_LOAD_DELAY_MS ?? 0);
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  const failures = env.TEST_LOAD_FAILURES;
  if (failures && (failures === "always" || attempt <= Number(failures))) throw new Error(`load ${attempt} failed (TEST_LOAD_FAILURES=${failures})`);
}

/**
 * A load that found the file or the plan wrong (an integrity failure): reading the same uploads
 * again cannot succeed, so, as the edge Worker does with an invalid file, the shard answers with
 * this failure — without reading its ranges again — until the GGUF or the plan is replaced.
 */
interface KnownBad {
  error: Error;
  /** uploadsVersion() when the failed load began. */
  version: string;
  checkedAt: number;
}

export class Shard extends DurableObject<ShardEnv> {
  private runtime?: Promise<ShardRuntime>;
  private bad?: KnownBad;
  private frames = 0;
  private batchedRuns = 0;
  private loads = 0;

  private ready(): Promise<ShardRuntime> {
    this.runtime ??= this.load();
    return this.runtime;
  }

  private async load(): Promise<ShardRuntime> {
    const env = this.env;
    try {
      if (this.bad) await this.stillBad(this.bad);
      // The version before the read: an upload that lands during the load is then seen as a change.
      const version = await uploadsVersion(env).catch(() => undefined);
      try {
        await injectedLoadFault(env, ++this.loads);
        return await loadRuntime(env);
      } catch (e) {
        console.log(`edgelm shard ${env.SHARD_INDEX}: load failed: ${(e as Error).message}`);
        if (integrityOfFailure(e) === "failed" && version !== undefined) {
          this.bad = { error: e as Error, version, checkedAt: Date.now() };
          console.log(`edgelm shard ${env.SHARD_INDEX}: not loaded again until ${env.MODEL_KEY} or its plan is replaced`);
        }
        throw e;
      }
    } catch (e) {
      this.runtime = undefined; // the next frame tries again (e.g. after the object is uploaded), unless the uploads are known bad
      throw e;
    }
  }

  /** Throws the remembered failure while the uploads are those it was found in; looks (head(), no ranges) at most once per LOAD_RETRY_MS. */
  private async stillBad(bad: KnownBad): Promise<void> {
    const recheck = recheckMsVar(this.env.LOAD_RETRY_MS);
    if (Date.now() - bad.checkedAt < recheck) throw bad.error;
    bad.checkedAt = Date.now();
    const now = await uploadsVersion(this.env).catch(() => bad.version);
    if (now === bad.version) throw bad.error;
    console.log(`edgelm shard ${this.env.SHARD_INDEX}: ${this.env.MODEL_KEY} or its plan was replaced since it was found invalid: loading it again`);
    this.bad = undefined;
  }

  /** One frame; load failures become error replies, as runtime errors do. */
  private async handle(frame: Uint8Array): Promise<Uint8Array> {
    let rt: ShardRuntime;
    try {
      rt = await this.ready();
    } catch (e) {
      return encodeFrame({ ok: false, error: `shard ${this.env.SHARD_INDEX} failed to load: ${(e as Error).message}`, load: { attempts: this.loads } });
    }
    this.maybeForget(rt, frame);
    const out = rt.handle(frame);
    await this.maybeCrash();
    await this.maybeDelay(frame);
    return out;
  }

  /** Tests: a slow shard (TEST_RUN_DELAY_MS). */
  private async maybeDelay(frame: Uint8Array): Promise<void> {
    const ms = Number(this.env.TEST_RUN_DELAY_MS ?? 0);
    if (ms > 0 && decodeFrame<ShardRequest>(frame).head.op === "run") await new Promise((r) => setTimeout(r, ms));
  }

  /** Tests: one sequence of a batched run frame is dropped before the frame runs (TEST_FORGET_AT_RUN); the shard then answers it unknown. */
  private maybeForget(rt: ShardRuntime, frame: Uint8Array): void {
    const at = Number(this.env.TEST_FORGET_AT_RUN ?? 0);
    if (!at || this.batchedRuns >= at) return;
    const { head } = decodeFrame<ShardRequest>(frame);
    if (head.op !== "run" || !Array.isArray(head.parts) || head.parts.length < 2 || ++this.batchedRuns !== at) return;
    rt.handle(encodeFrame({ op: "drop", seq: head.parts[0].seq }));
    console.log(`edgelm shard ${this.env.SHARD_INDEX}: forgot sequence ${head.parts[0].seq} (TEST_FORGET_AT_RUN=${at})`);
  }

  /**
   * Tests: the platform resets this object (ctx.abort: in-flight calls and streams break, the
   * next call gets a new instance that must load again and holds no KV), once per object: the
   * mark is in the object's storage, which outlives the instance.
   */
  private async maybeCrash(): Promise<void> {
    const after = Number(this.env.TEST_CRASH_AFTER_FRAMES ?? 0);
    if (!after || ++this.frames < after || (await this.ctx.storage.get("test-crashed"))) return;
    await this.ctx.storage.put("test-crashed", true);
    // abort() cancels writes not yet flushed, and the mark must survive it.
    await this.ctx.storage.sync();
    this.ctx.abort("shard reset by TEST_CRASH_AFTER_FRAMES");
  }

  async call(frame: Uint8Array): Promise<Uint8Array> {
    return this.handle(frame);
  }

  async session(requests: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array>> {
    // Load inside this call: the coordinator's first frame then waits for an answer, not for a
    // load running in the background, and a load error is answered per frame.
    await this.ready().catch(() => {});
    const pipe = new IdentityTransformStream();
    const writer = pipe.writable.getWriter();
    const pump = async () => {
      const reader = new FrameReader(requests);
      try {
        for (let frame = await reader.next(); frame; frame = await reader.next()) await writer.write(await this.handle(frame));
        await writer.close();
      } catch (e) {
        // The usual end: the coordinator's request is over, and workerd disconnects its stream.
        await writer.abort(e).catch(() => {});
        await reader.cancel(e);
      }
    };
    this.ctx.waitUntil(pump());
    return pipe.readable;
  }

  async fetch(): Promise<Response> {
    const rt = await this.ready();
    return Response.json(rt.info());
  }
}

export default {
  async fetch(): Promise<Response> {
    return new Response("edgelm shard: reached by the coordinator through its Durable Object binding\n", { status: 404 });
  },
};
