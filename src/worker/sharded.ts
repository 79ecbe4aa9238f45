/**
 * The edge Worker in sharded mode (ENGINE = "sharded"; docs/sharding.md): instead of streaming the
 * whole GGUF into this isolate, read the shard plan and the GGUF header from R2, and serve the
 * model through a ShardedEngine whose layers and head live in the shard Workers bound as
 * SHARD_<i> (Durable Object namespaces, one script each). The tokenizer comes from the header;
 * embedding rows are range-read on demand. Nothing here is big: the isolate stays well under
 * 128 MB (header + tokenizer + a bounded row cache).
 */
import { hashPrefix, IntegrityError, ManifestMissingError, sha256Hex } from "../gguf/manifest";
import { parseHeader } from "../gguf/reader";
import { BufferSource } from "../gguf/source";
import type { Metadata } from "../gguf/types";
import { ShardedEngine } from "../shard/engine";
import { RangeEmbedding } from "../shard/embedding";
import { RowHashes } from "../shard/row-hashes";
import { RpcLink, StreamLink } from "../shard/links";
import { withBatching, type BatchingOptions } from "../api/batching";
import type { Engine } from "../model/engine";
import type { ShardPlan } from "../shard/plan";
import type { Env } from "./env";
import type { Admission, AdmitResult } from "../api/deps";
import { parseShardLimits, shardAdmissionCheck } from "./shard-admission";
import { ObjectUnavailableError } from "./source";
import { parseShardReplicas, replicaStubs } from "./shard-replicas";
import { ReplicaSet } from "./replica-set";

interface R2Ranged {
  get(key: string, opts?: { range?: { offset: number; length: number } }): Promise<{ size: number; arrayBuffer(): Promise<ArrayBuffer>; text(): Promise<string> } | null>;
}

/** The header bytes of a file of `fileSize` bytes: parseHeader checks tensor bounds against the whole file. */
class HeaderBytes extends BufferSource {
  constructor(bytes: Uint8Array, private readonly fileSize: number) {
    super(bytes);
  }
  override get size(): number {
    return this.fileSize;
  }
}

/** The plan's object key: PLAN_KEY, else next to the GGUF. */
export function planKeyFor(env: Env, modelKey: string): string {
  const key = (env as unknown as Record<string, unknown>).PLAN_KEY;
  return typeof key === "string" && key ? key : `${modelKey}.plan.json`;
}

/** An R2 call that throws is storage trouble (retried by the loader), not a bad plan or file. */
async function fromR2<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new ObjectUnavailableError(`${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * "verified" when the plan carries the header's hash, one for every shard range and the embedding's
 * row hashes: the header is checked here, each shard checks its own ranges as it loads, and each
 * embedding row is checked as it is read. A plan without them (made before hashes, or by hand) is
 * "unverified", refused when `requireHashes` (REQUIRE_MANIFEST) is set.
 */
export function planIntegrity(plan: ShardPlan, planKey: string, requireHashes: boolean): "verified" | "unverified" {
  const hashed = plan.model.headerSha256 !== undefined && plan.shards.every((s) => s.tensors.every((r) => r.sha256 !== undefined));
  const rows = plan.embedding.hashes !== undefined;
  if (requireHashes && !(hashed && rows)) {
    const what = hashed ? "no hashes of the embedding rows (embedding.hashes)" : "no hashes";
    throw new ManifestMissingError(`REQUIRE_MANIFEST is true and the shard plan "${planKey}" has ${what}: re-run edgelm shard-plan on the file and upload its plan.json and embedding.hashes`);
  }
  return hashed && rows ? "verified" : "unverified";
}

export async function loadShardedEngine(
  env: Env,
  modelKey: string,
  prefillChunk: number,
  log: (line: string) => void,
  requireHashes: boolean,
  batching: BatchingOptions,
): Promise<{ engines: ShardedEngine[]; served: Engine; replicaSet?: ReplicaSet; metadata: Metadata; admit: (a: Admission) => AdmitResult; integrity: "verified" | "unverified" }> {
  const vars = env as unknown as Record<string, unknown>;
  const bucket = env.MODELS as unknown as R2Ranged | undefined;
  if (!bucket) throw new Error("sharded mode reads the plan, header and embedding rows from R2: bind the bucket as MODELS");
  const planKey = planKeyFor(env, modelKey);
  const planText = await fromR2(`reading the shard plan "${planKey}"`, async () => (await bucket.get(planKey))?.text());
  // Not there yet is the usual state between `wrangler deploy` and the upload: the loader retries it.
  if (planText === undefined) throw new ObjectUnavailableError(`the shard plan "${planKey}" is not in the R2 bucket bound as MODELS (write it with edgelm shard-plan --out, then upload plan.json under that key)`);
  const plan = JSON.parse(planText) as ShardPlan;
  if (plan.model.key !== modelKey) throw new Error(`the plan "${planKey}" is for "${plan.model.key}", MODEL_KEY is "${modelKey}"`);

  const read = async (offset: number, length: number): Promise<Uint8Array> => {
    const obj = await fromR2(`reading ${length} bytes of "${modelKey}" at ${offset}`, () => bucket.get(modelKey, { range: { offset, length } }));
    if (!obj) throw new ObjectUnavailableError(`the object "${modelKey}" is not in the R2 bucket bound as MODELS`);
    if (obj.size !== plan.model.size) throw new Error(`"${modelKey}" is ${obj.size} bytes, the plan was made for ${plan.model.size}: re-run edgelm shard-plan`);
    return new Uint8Array(await obj.arrayBuffer());
  };
  const integrity = planIntegrity(plan, planKey, requireHashes);
  const headerBytes = await read(0, plan.model.dataOffset);
  const want = plan.model.headerSha256;
  if (want !== undefined) {
    const got = await sha256Hex(headerBytes);
    if (got !== want) throw new IntegrityError(`integrity check failed: the header of "${modelKey}": sha256 ${hashPrefix(got)} does not match the plan's ${hashPrefix(want)}; the model is not served`);
  }
  const header = await parseHeader(new HeaderBytes(headerBytes, plan.model.size));
  if (header.dataOffset !== plan.model.dataOffset) throw new Error(`"${modelKey}" has its data at ${header.dataOffset}, the plan says ${plan.model.dataOffset}: re-run edgelm shard-plan`);
  const ref = plan.embedding.hashes;
  let hashes: RowHashes | undefined;
  if (ref) {
    const bytes = await fromR2(`reading the embedding hashes "${ref.key}"`, async () => {
      const obj = await bucket.get(ref.key);
      return obj ? new Uint8Array(await obj.arrayBuffer()) : undefined;
    });
    if (!bytes) throw new ObjectUnavailableError(`the embedding hashes "${ref.key}" named by the plan are not in the R2 bucket bound as MODELS (edgelm shard-plan --out writes them as embedding.hashes; upload them under that key)`);
    hashes = await RowHashes.verify(bytes, ref, plan.model.config.vocabSize);
  }

  const transport = typeof vars.SHARD_TRANSPORT === "string" && vars.SHARD_TRANSPORT ? vars.SHARD_TRANSPORT : "stream";
  if (transport !== "stream" && transport !== "rpc") throw new Error(`var SHARD_TRANSPORT must be "stream" or "rpc", got ${JSON.stringify(transport)}`);
  const replicas = parseShardReplicas(vars);
  const stubs = Array.from({ length: replicas }, (_, r) => replicaStubs(plan, vars, r, replicas));
  // Shards load inside their first session() call, made by the first generation request (which
  // stays open while they load): this loader runs in the waitUntil of whichever request started
  // it, where a shard's load would count against that unrelated request's 30 s after-response cap.
  const limits = parseShardLimits(vars);
  log(`edgelm: sharded model ${modelKey}: ${plan.shards.length} shards × ${replicas} replica(s) (${transport} transport), context ${plan.contextLength}, at most ${limits.subrequests} subrequests and ${limits.invocations} invocations per request, batches of up to ${batching.maxBatch} sequences`);
  const admit = shardAdmissionCheck({ shards: plan.shards.length, transport, prefillChunk }, limits);
  const embedding = new RangeEmbedding(plan, read, { hashes, onIntegrityFailure: (e) => log(`edgelm: ${modelKey}: ${e.message}`) });
  // The replicas share this isolate's embedding rows: only the shards are replicated. Each replica
  // batches its own steps, on the polled scheduler (as the single-isolate Worker): a step is run
  // from the look of a waiting call whose request has a row in it, so its frames go on that
  // request's sessions; the same driver is kept while it is in the steps, so they stay open.
  const engines = stubs.map((s) => new ShardedEngine(plan, s.map((stub) => (transport === "stream" ? new StreamLink(stub) : new RpcLink(stub))), embedding));
  const served = engines.map((e) => withBatching(e, { ...batching, keepDriver: true }));
  // With replicas, one engine over them admits MAX_BATCH per replica and fails over at session open.
  const replicaSet = replicas > 1 ? new ReplicaSet(engines, served, batching.maxBatch) : undefined;
  return { engines, served: replicaSet ?? served[0], replicaSet, metadata: header.metadata, admit, integrity };
}

/**
 * What /health says of a sharded model beyond the usual, read live: `sharding` (what the platform
 * bills and limits — invocations, subrequests — summed over the replicas, each replica's own
 * counts, and each shard's last load failure), and, once an embedding row failed its check,
 * `integrity: "failed"` with `integrity_reason` naming the row.
 */
export function liveShardInfo(info: Record<string, unknown>, engines: readonly ShardedEngine[], replicaSet?: ReplicaSet): void {
  const embedding = engines[0].embedding as Partial<RangeEmbedding>;
  const integrity = info.integrity;
  const sum = (f: (e: ShardedEngine) => number) => engines.reduce((a, e) => a + f(e), 0);
  Object.defineProperty(info, "sharding", {
    enumerable: true,
    get: () => ({
      shard_invocations: sum((e) => e.invocations),
      shard_frames: sum((e) => e.stats.frames),
      // Steps and the sequences they carried (÷ steps: the mean batch).
      shard_steps: sum((e) => e.stats.steps),
      sequence_steps: sum((e) => e.stats.forwards),
      prefix_reruns: sum((e) => e.stats.recoveries),
      embedding_reads: embedding.reads ?? 0,
      embedding_rows_verified: embedding.verified ?? 0,
      shard_failures: engines.flatMap((e, replica) =>
        [...e.shardFailures.values()].map((f) => ({ shard: f.shard, script: f.script, ...(engines.length > 1 ? { replica } : {}), reason: f.reason, attempts: f.attempts, at: new Date(f.at).toISOString() })),
      ),
      replicas: replicaInfo(engines, replicaSet),
    }),
  });
  Object.defineProperty(info, "integrity", { enumerable: true, get: () => (embedding.failure ? "failed" : integrity) });
  Object.defineProperty(info, "integrity_reason", { enumerable: true, get: () => embedding.failure?.message });
}

/** Each replica's own counts (which pipelines the traffic went through), whether new requests go to it, and its sequences running and waiting for it. */
function replicaInfo(engines: readonly ShardedEngine[], set?: ReplicaSet): Record<string, unknown>[] {
  return engines.map((e, replica) => ({
    replica,
    forwards: e.stats.forwards,
    shard_frames: e.stats.frames,
    shard_invocations: e.invocations,
    ...(set ? { healthy: set.healthy(replica), ...set.occupancy(replica) } : {}),
  }));
}
