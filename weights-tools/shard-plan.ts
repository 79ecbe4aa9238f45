/**
 * `edgelm shard-plan` as a library: plan a GGUF file's shards and the files that deploy them.
 * The planning itself is pure and lives in src/shard/plan.ts (the coordinator and the tests use
 * it too); this module only reads the file's header and renders the deployment (Node).
 */
import { createHash } from "node:crypto";
import { openGGUF, openModelFile } from "../src/gguf/node";
import { deploymentFiles, embeddingHashesKeyOf, type DeployOptions } from "../src/shard/deploy";
import { planShards, type PlanOptions, type ShardPlan } from "../src/shard/plan";
import { ROW_HASH_BYTES } from "../src/shard/row-hashes";

export { formatPlan, planShards, ShardPlanError, type ShardPlan } from "../src/shard/plan";
export { deploymentFiles, EMBEDDING_HASHES_FILE, planKeyOf } from "../src/shard/deploy";

/** A plan made from the file, and its embedding's per-row hashes (the object `plan.embedding.hashes` names). */
export interface HashedPlan {
  plan: ShardPlan;
  embeddingHashes: Uint8Array;
}

/**
 * Plans the shards of the GGUF at `path`, with the sha256 of the header and of every range a
 * shard reads, so each shard can verify its own part as it loads, and a hash per embedding row
 * for the coordinator (the ranges are read once, to hash them). `check` may refuse the plan first.
 */
export async function planFile(path: string, opts: Omit<PlanOptions, "size">, check?: (plan: ShardPlan) => void): Promise<HashedPlan> {
  const file = await openGGUF(path);
  await file.close();
  const plan = planShards(file, { ...opts, size: file.size });
  // A plan refused for its deployment is refused before the whole file is read to hash it.
  check?.(plan);
  return { plan, embeddingHashes: await addRangeHashes(plan, path) };
}

const HASH_CHUNK = 4 << 20;

/**
 * Sets `sha256` on every shard's tensor ranges, the header's hash and `embedding.hashes` on the
 * plan, from the file's bytes; returns the row hashes object that `embedding.hashes` describes.
 */
export async function addRangeHashes(plan: ShardPlan, path: string): Promise<Uint8Array> {
  const { handle, size } = await openModelFile(path);
  try {
    if (size !== plan.model.size) throw new Error(`${path} is ${size} bytes, the plan was made for ${plan.model.size}`);
    const buf = new Uint8Array(HASH_CHUNK);
    const hashRange = async (offset: number, length: number): Promise<string> => {
      const h = createHash("sha256");
      for (let at = offset; at < offset + length; ) {
        const { bytesRead } = await handle.read(buf, 0, Math.min(HASH_CHUNK, offset + length - at), at);
        if (bytesRead === 0) throw new Error(`${path}: ended at ${at} while hashing`);
        h.update(buf.subarray(0, bytesRead));
        at += bytesRead;
      }
      return h.digest("hex");
    };
    plan.model.headerSha256 = await hashRange(0, plan.model.dataOffset);
    for (const s of plan.shards) for (const r of s.tensors) r.sha256 = await hashRange(r.offset, r.byteLength);
    const rows = await embeddingRowHashes(plan, (at, n) => readExactly(handle, path, at, n));
    plan.embedding.hashes = { key: embeddingHashesKeyOf(plan.model.key), sha256: createHash("sha256").update(rows).digest("hex"), bytesPerRow: ROW_HASH_BYTES };
    return rows;
  } finally {
    await handle.close();
  }
}

type Handle = Awaited<ReturnType<typeof openModelFile>>["handle"];

async function readExactly(handle: Handle, path: string, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  for (let done = 0; done < length; ) {
    const { bytesRead } = await handle.read(out, done, length - done, offset + done);
    if (bytesRead === 0) throw new Error(`${path}: ended at ${offset + done} while hashing`);
    done += bytesRead;
  }
  return out;
}

/** The first ROW_HASH_BYTES of each embedding row's sha256, row after row (src/shard/row-hashes.ts). */
async function embeddingRowHashes(plan: ShardPlan, read: (offset: number, length: number) => Promise<Uint8Array>): Promise<Uint8Array> {
  const { offset, rowBytes } = plan.embedding;
  const rows = plan.model.config.vocabSize;
  const out = new Uint8Array(rows * ROW_HASH_BYTES);
  const perChunk = Math.max(1, Math.floor(HASH_CHUNK / rowBytes));
  for (let r0 = 0; r0 < rows; r0 += perChunk) {
    const n = Math.min(perChunk, rows - r0);
    const bytes = await read(offset + r0 * rowBytes, n * rowBytes);
    for (let i = 0; i < n; i++) {
      const digest = createHash("sha256").update(bytes.subarray(i * rowBytes, (i + 1) * rowBytes)).digest();
      out.set(digest.subarray(0, ROW_HASH_BYTES), (r0 + i) * ROW_HASH_BYTES);
    }
  }
  return out;
}

export function renderDeployment(plan: ShardPlan, opts: DeployOptions): Record<string, string> {
  return deploymentFiles(plan, opts);
}
