/**
 * Shards verify their own ranges against the hashes edgelm shard-plan puts into plan.json: in
 * Node (the runtime itself) and in real workerd (coordinator + shard Workers). A flipped byte in
 * one shard's range is refused by that shard — naming it and the tensor — and never served; a plan
 * without hashes is refused under REQUIRE_MANIFEST.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { IntegrityError, ManifestMissingError } from "../../src/gguf/manifest";
import type { ShardPlan } from "../../src/shard/plan";
import { fileRanges, nodeKernels } from "../../src/shard/node";
import { ShardRuntime } from "../../src/shard/runtime";
import { synthGGUF } from "../../weights-tools/fixtures";
import { planFile } from "../../weights-tools/shard-plan";
import { putFile } from "../worker/harness";
import { complete, health, settledHealth as settled, startSharded, type ShardedUnderTest } from "./harness";

const dir = mkdtempSync(join(tmpdir(), "edgelm-shard-integrity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEY = "tiny.gguf";
// As test/shard/workerd.test.ts: one layer shard and several head slices.
const BUDGET_MB = 19;
const CONTEXT = 128;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let model: string;
let plan: ShardPlan;
/** The model with one byte flipped inside the last head shard's slice of output.weight. */
let flipped: string;
let target: { shard: number; name: string };

beforeAll(async () => {
  model = await synthGGUF("tiny", "q4_0");
  ({ plan } = await planFile(model, { key: KEY, budgetBytes: BUDGET_MB * 2 ** 20, contextLength: CONTEXT, sequences: 1 }));
  const last = plan.shards[plan.shards.length - 1];
  const ref = last.tensors.find((r) => r.name === "output.weight")!;
  target = { shard: last.index, name: ref.name };
  const bytes = readFileSync(model);
  bytes[ref.offset + 5] ^= 0x01;
  flipped = join(dir, "flipped.gguf");
  writeFileSync(flipped, bytes);
});

describe("plan.json hashes (edgelm shard-plan)", () => {
  it("cover the header and every range a shard reads, and match the file's bytes", () => {
    const bytes = new Uint8Array(readFileSync(model));
    expect(plan.model.headerSha256).toBe(sha(bytes.subarray(0, plan.model.dataOffset)));
    expect(plan.shards.length).toBeGreaterThan(2);
    for (const s of plan.shards) for (const r of s.tensors) expect(r.sha256, `${s.script} ${r.name}`).toBe(sha(bytes.subarray(r.offset, r.offset + r.byteLength)));
  });
});

describe("shard runtime (Node): each shard verifies its own ranges", () => {
  const kernels = nodeKernels();

  it("a good file: every shard loads", async () => {
    for (const s of plan.shards) await ShardRuntime.load(plan, s.index, fileRanges(model), kernels);
  });

  it("a flipped byte: only the shard holding it refuses, naming itself and the tensor", async () => {
    for (const s of plan.shards) {
      const loading = ShardRuntime.load(plan, s.index, fileRanges(flipped), kernels);
      if (s.index !== target.shard) await loading;
      else await expect(loading).rejects.toThrow(new RegExp(`integrity check failed: shard ${s.index} \\(${s.script}\\): output\\.weight \\(\\d+ bytes at \\d+\\): sha256 [0-9a-f]{12}… does not match the plan's`));
    }
  });

  it("a plan without hashes loads unverified, and is refused when hashes are required", async () => {
    const bare: ShardPlan = JSON.parse(JSON.stringify(plan), (k, v) => (k === "sha256" ? undefined : v));
    await ShardRuntime.load(bare, 0, fileRanges(flipped), kernels);
    await expect(ShardRuntime.load(bare, 0, fileRanges(model), { ...kernels, requireHashes: true })).rejects.toThrow(ManifestMissingError);
    await expect(ShardRuntime.load(plan, target.shard, fileRanges(flipped), { ...kernels, requireHashes: true })).rejects.toThrow(IntegrityError);
  });
});

describe("sharded Worker (workerd)", () => {
  let w: ShardedUnderTest | undefined;
  afterEach(async () => {
    await w?.close();
    w = undefined;
  });

  it("a shard whose range has a flipped byte refuses to load: the request fails naming it, nothing is generated", async () => {
    w = await startSharded({ model: flipped, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: { MODEL_ID: "tiny", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0" }, hashesFrom: model });
    const h = await settled(w.url);
    expect(h).toMatchObject({ status: 200, body: { integrity: "verified" } });
    const r = await complete(w.url, "tiny", { prompt: "hello", max_tokens: 3 });
    expect(r.status).toBeGreaterThanOrEqual(500);
    expect(r.json?.choices).toBeUndefined();
    expect(r.text).toMatch(new RegExp(`shard ${target.shard}.*integrity check failed`));
    expect(w.logs()).toMatch(new RegExp(`edgelm shard ${target.shard}: load failed: integrity check failed: .*output\\.weight.*does not match the plan's`));
  }, 180_000);

  it("the coordinator's /health names the failed shard; the shard does not read its ranges again until the file is replaced", async () => {
    const failed = new RegExp(`edgelm shard ${target.shard}: load failed:`, "g");
    w = await startSharded({
      model: flipped,
      key: KEY,
      budgetMb: BUDGET_MB,
      context: CONTEXT,
      vars: { MODEL_ID: "tiny", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0" },
      hashesFrom: model,
      shardVars: { [target.shard]: { LOAD_RETRY_MS: "1500" } },
    });
    for (let i = 0; i < 3; i++) expect((await complete(w.url, "tiny", { prompt: "hello", max_tokens: 2 })).status).toBeGreaterThanOrEqual(500);
    const h = await health(w.url);
    const script = w.plan.shards[target.shard].script;
    // One load in three requests (each sends the shard a session and several frames): the failure is remembered, not re-read.
    expect(h.body.sharding).toMatchObject({ shard_failures: [{ shard: target.shard, script, attempts: 1, reason: expect.stringMatching(/integrity check failed: .*output\.weight.*does not match the plan's/) }] });
    expect(new Date(h.body.sharding.shard_failures[0].at).getTime()).toBeGreaterThan(Date.now() - 120_000);
    expect(w.logs().match(failed)).toHaveLength(1);
    expect(w.logs()).toContain(`edgelm shard ${target.shard}: not loaded again until ${KEY} or its plan is replaced`);

    // The good file uploaded: once LOAD_RETRY_MS has passed, the shard sees the new upload, loads it, and the coordinator's /health forgets the failure.
    await putFile(await w.mf.getR2Bucket("MODELS", "edgelm"), KEY, model);
    await new Promise((r) => setTimeout(r, 1600));
    const ok = await complete(w.url, "tiny", { prompt: "hello", max_tokens: 2 });
    expect(ok.status, ok.text).toBe(200);
    expect((await health(w.url)).body.sharding.shard_failures).toEqual([]);
    expect(w.logs()).toContain(`edgelm shard ${target.shard}: ${KEY} or its plan was replaced since it was found invalid: loading it again`);
  }, 180_000);

  it("REQUIRE_MANIFEST=true refuses a plan without hashes at the coordinator", async () => {
    w = await startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: { MODEL_ID: "tiny", REQUIRE_MANIFEST: "true" } });
    const h = await settled(w.url);
    expect(h).toMatchObject({ status: 503, body: { status: "failed", integrity: "unverified", reason: expect.stringContaining("has no hashes: re-run edgelm shard-plan") } });
  }, 180_000);
});
