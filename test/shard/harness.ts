/**
 * The sharded deployment in real workerd: the coordinator (src/worker.ts, ENGINE = "sharded") and
 * one Worker per shard (src/shard/worker.ts, each with its own Durable Object class), all in one
 * Miniflare on a real socket, sharing one local R2 bucket that holds the GGUF and its plan —
 * the layout `edgelm shard-plan` writes configs for.
 */
import type { Readable } from "node:stream";
import { Miniflare, type WorkerOptions } from "miniflare";
import { openGGUF } from "../../src/gguf/node";
import { planKeyOf } from "../../src/shard/deploy";
import { planShards, type ShardPlan } from "../../src/shard/plan";
import { replicaBinding, replicaScript } from "../../src/shard/replicas";
import { addRangeHashes } from "../../weights-tools/shard-plan";
import { bundleEntry, bundleWorker, wranglerCompat, type WorkerModule } from "../worker/bundle";
import { parseSSE, putFile } from "../worker/harness";
import { localWorkerdV8Flags, useWorkerdV8Flags } from "../worker/v8-flags";

/** src/shard/worker.ts bundled as wrangler would: `*.wasm` imports as compiled modules, cloudflare:* left to workerd. */
export function bundleShard(): Promise<WorkerModule[]> {
  return bundleEntry("src/shard/worker.ts", "shard.js", ["cloudflare:*"]);
}

export interface ShardedUnderTest {
  mf: Miniflare;
  url: string;
  plan: ShardPlan;
  logs(): string;
  close(): Promise<void>;
}

export interface ShardedOptions {
  model: string;
  key: string;
  budgetMb: number;
  context: number;
  sequences?: number;
  /** Coordinator vars (MODEL_KEY, ENGINE and PLAN_KEY are set here). */
  vars?: Record<string, string>;
  /** Independent shard pipelines (SHARD_REPLICAS): every shard runs this many times, each replica its own script. Default 1. */
  replicas?: number;
  /** Extra vars for one shard (by index, in every replica), e.g. TEST_CRASH_AFTER_FRAMES. */
  shardVars?: Record<number, Record<string, string>>;
  /** Extra vars for one replica's shards: by replica, then by shard index (a fault in one pipeline only). */
  replicaShardVars?: Record<number, Record<number, Record<string, string>>>;
  port?: number;
  /** Leave the plan out of R2 (the test uploads it, as an operator would after deploying). */
  withholdPlan?: boolean;
  /** Put the hashes of edgelm shard-plan into the plan, taken from this file (default: no hashes), and upload the embedding's row hashes beside it. */
  hashesFrom?: string;
  /** Changes the plan and row hashes before they are uploaded (a plan made without row hashes, a tampered hashes object). */
  edit?: (plan: ShardPlan, embeddingHashes: Uint8Array | undefined) => Uint8Array | undefined;
}

export async function planForFile(model: string, key: string, budgetMb: number, context: number, sequences = 1): Promise<ShardPlan> {
  const f = await openGGUF(model);
  await f.close();
  return planShards(f, { key, size: f.size, budgetBytes: budgetMb * 2 ** 20, contextLength: context, sequences });
}

export async function startSharded(o: ShardedOptions): Promise<ShardedUnderTest> {
  // Seven and more isolates in one workerd: without this, one start in ~8 livelocks on 2 cores (v8-flags.ts).
  useWorkerdV8Flags(localWorkerdV8Flags());
  const plan = await planForFile(o.model, o.key, o.budgetMb, o.context, o.sequences ?? 1);
  let embeddingHashes = o.hashesFrom ? await addRangeHashes(plan, o.hashesFrom) : undefined;
  if (o.edit) embeddingHashes = o.edit(plan, embeddingHashes);
  const [coordinator, shard] = await Promise.all([bundleWorker(), bundleShard()]);
  const compat = wranglerCompat();
  const r2 = { MODELS: "edgelm-models" };
  const replicas = Array.from({ length: o.replicas ?? 1 }, (_, r) => plan.shards.map((s) => ({ s, r }))).flat();
  let output = "";
  const capture = (s: Readable) => s.on("data", (d) => (output += String(d)));
  const workers: WorkerOptions[] = [
    {
      name: "edgelm",
      modules: coordinator,
      ...compat,
      r2Buckets: r2,
      bindings: { ...o.vars, ENGINE: "sharded", MODEL_KEY: o.key, PLAN_KEY: planKeyOf(o.key), ...(o.replicas ? { SHARD_REPLICAS: String(o.replicas) } : {}) },
      durableObjects: Object.fromEntries(replicas.map(({ s, r }) => [replicaBinding(s, r), { className: "Shard", scriptName: replicaScript(s, r) }])),
    },
    ...replicas.map(({ s, r }) => ({
      name: replicaScript(s, r),
      modules: shard,
      ...compat,
      r2Buckets: r2,
      bindings: { MODEL_KEY: o.key, PLAN_KEY: planKeyOf(o.key), SHARD_INDEX: String(s.index), ...o.shardVars?.[s.index], ...o.replicaShardVars?.[r]?.[s.index] },
      durableObjects: { SHARD: "Shard" },
    })),
  ];
  const mf = new Miniflare({
    workers,
    host: "127.0.0.1",
    port: o.port ?? 0,
    handleRuntimeStdio: (stdout: Readable, stderr: Readable) => {
      capture(stdout);
      capture(stderr);
    },
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const bucket = await mf.getR2Bucket("MODELS", "edgelm");
  await putFile(bucket, o.key, o.model);
  if (!o.withholdPlan) await bucket.put(planKeyOf(o.key), JSON.stringify(plan));
  // A plain ArrayBuffer: Miniflare's proxy serialiser takes no typed arrays.
  if (embeddingHashes && plan.embedding.hashes) await bucket.put(plan.embedding.hashes.key, embeddingHashes.slice().buffer);
  return { mf, url, plan, logs: () => output, close: () => mf.dispose() };
}

/** One completion of `model` on `url`: its text, and the parsed body (the events, when streamed). */
export async function complete(url: string, model: string, body: Record<string, unknown>): Promise<{ status: number; text: string; json?: any }> {
  const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, ...body }) });
  const raw = await res.text();
  if (!body.stream) {
    const json = JSON.parse(raw);
    return { status: res.status, text: json.choices?.[0]?.text ?? raw, json };
  }
  const events = parseSSE(raw).data.filter((d) => d !== "[DONE]").map((d) => JSON.parse(d));
  return { status: res.status, text: events.map((e) => e.choices?.[0]?.text ?? "").join(""), json: events };
}

/** GET /health: its status and body. */
export async function health(url: string): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(`${url}/health`);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** /health once the load has ended, either way (no vitest here: scripts/shards-dev.mjs imports this file). */
export async function settledHealth(url: string, timeoutMs = 60_000): Promise<{ status: number; body: Record<string, any> }> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const h = await health(url);
    if (h.body.status !== "loading") return h;
    if (Date.now() > end) throw new Error(`${url}/health still says loading after ${timeoutMs} ms: ${JSON.stringify(h.body)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
