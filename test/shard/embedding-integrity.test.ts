/**
 * The coordinator verifies every embedding row it reads against the per-row hashes edgelm
 * shard-plan writes beside plan.json: in Node (RangeEmbedding itself) and in real workerd
 * (coordinator + shard Workers). A flipped byte in a row fails the requests that use that row —
 * naming the token id, the tensor and both hashes — and is never served; other rows still are.
 * A tampered hashes object is refused at load; a plan without row hashes is "unverified", refused
 * under REQUIRE_MANIFEST.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { IntegrityError, ManifestMissingError } from "../../src/gguf/manifest";
import { openGGUF } from "../../src/gguf/node";
import { RangeEmbedding } from "../../src/shard/embedding";
import { fileRanges } from "../../src/shard/node";
import type { ShardPlan } from "../../src/shard/plan";
import { RowHashes } from "../../src/shard/row-hashes";
import { Tokenizer } from "../../src/tokenizer/tokenizer";
import { planIntegrity } from "../../src/worker/sharded";
import { synthGGUF } from "../../weights-tools/fixtures";
import { planFile } from "../../weights-tools/shard-plan";
import { complete, health, settledHealth as settled, startSharded, type ShardedUnderTest } from "./harness";

const dir = mkdtempSync(join(tmpdir(), "edgelm-embd-integrity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEY = "tiny.gguf";
const BUDGET_MB = 19;
const CONTEXT = 128;
const VARS = { MODEL_ID: "tiny", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0" };
// The prompt that uses the flipped row, and one that does not.
const BAD_PROMPT = "hello";
const GOOD_PROMPT = "abc";
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest();

let model: string;
let plan: ShardPlan;
let rowHashes: Uint8Array;
/** The model with one byte flipped inside embedding row `row`, a token of BAD_PROMPT only. */
let flipped: string;
let row: number;

beforeAll(async () => {
  model = await synthGGUF("tiny", "q4_0");
  ({ plan, embeddingHashes: rowHashes } = await planFile(model, { key: KEY, budgetBytes: BUDGET_MB * 2 ** 20, contextLength: CONTEXT, sequences: 1 }));
  const f = await openGGUF(model);
  await f.close();
  const tok = Tokenizer.fromGGUF(f.metadata);
  const good = new Set(tok.encode(GOOD_PROMPT));
  row = tok.encode(BAD_PROMPT).find((t) => !good.has(t))!;
  expect(row).toBeDefined();
  const bytes = readFileSync(model);
  bytes[plan.embedding.offset + row * plan.embedding.rowBytes + 5] ^= 0x01;
  flipped = join(dir, "flipped-embd.gguf");
  writeFileSync(flipped, bytes);
});

describe("the embedding's row hashes (edgelm shard-plan)", () => {
  it("are the first 16 bytes of each row's sha256, and the plan names and hashes the object", () => {
    const bytes = new Uint8Array(readFileSync(model));
    const { offset, rowBytes } = plan.embedding;
    const V = plan.model.config.vocabSize;
    expect(rowHashes.length).toBe(V * 16);
    for (const t of [0, 1, row, V - 1]) expect(Buffer.from(rowHashes.subarray(t * 16, t * 16 + 16))).toEqual(sha(bytes.subarray(offset + t * rowBytes, offset + (t + 1) * rowBytes)).subarray(0, 16));
    expect(plan.embedding.hashes).toEqual({ key: `${KEY}.embedding.hashes`, sha256: sha(rowHashes).toString("hex"), bytesPerRow: 16 });
  });

  it("a tampered hashes object, or one of the wrong size, is refused", async () => {
    const ref = plan.embedding.hashes!;
    const V = plan.model.config.vocabSize;
    await RowHashes.verify(rowHashes, ref, V);
    const tampered = rowHashes.slice();
    tampered[row * 16] ^= 0xff;
    await expect(RowHashes.verify(tampered, ref, V)).rejects.toThrow(/integrity check failed: the embedding hashes "tiny\.gguf\.embedding\.hashes": sha256 [0-9a-f]{12}… does not match the plan's/);
    await expect(RowHashes.verify(rowHashes.subarray(16), ref, V)).rejects.toThrow(IntegrityError);
  });

  it("plan integrity: without row hashes the plan is unverified, and refused under REQUIRE_MANIFEST", () => {
    expect(planIntegrity(plan, "p", false)).toBe("verified");
    const bare: ShardPlan = { ...plan, embedding: { ...plan.embedding, hashes: undefined } };
    expect(planIntegrity(bare, "p", false)).toBe("unverified");
    expect(() => planIntegrity(bare, "p", true)).toThrow(ManifestMissingError);
    expect(() => planIntegrity(bare, "p", true)).toThrow(/no hashes of the embedding rows/);
  });
});

describe("RangeEmbedding (Node): every row read is checked before it is used", () => {
  it("a flipped row is refused, naming the token id, the tensor and both hashes; other rows are served; nothing bad is cached", async () => {
    const hashes = await RowHashes.verify(rowHashes, plan.embedding.hashes!, plan.model.config.vocabSize);
    const failures: string[] = [];
    let file = flipped;
    const embd = new RangeEmbedding(plan, (offset, length) => fileRanges(file).bytes(offset, length), { hashes, onIntegrityFailure: (e) => failures.push(e.message) });
    const other = row === 0 ? 1 : 0;
    const want = new RangeEmbedding(plan, fileRanges(model).bytes);
    expect(await embd.rows([other])).toEqual(await want.rows([other]));
    const message = new RegExp(`integrity check failed: embedding row ${row} \\(token id ${row}\\) of token_embd\\.weight \\(\\d+ bytes at \\d+\\): sha256 [0-9a-f]{12}… does not match the plan's [0-9a-f]{12}…; the row is not served`);
    await expect(embd.rows([other, row])).rejects.toThrow(message);
    expect(failures).toEqual([expect.stringMatching(message)]);
    expect(embd.failure?.message).toMatch(message);
    // Asked again, the row is read again (it was not cached) and refused again.
    const reads = embd.reads;
    await expect(embd.rows([row])).rejects.toThrow(IntegrityError);
    expect(embd.reads).toBe(reads + 1);
    // The file uploaded again: the row is served, and the failure is over.
    file = model;
    expect(await embd.rows([row])).toEqual(await want.rows([row]));
    expect(embd.failure).toBeUndefined();
    // Without hashes the flipped bytes would be served.
    await new RangeEmbedding(plan, fileRanges(flipped).bytes).rows([row]);
  });
});

describe("sharded Worker (workerd)", () => {
  let w: ShardedUnderTest | undefined;
  afterEach(async () => {
    await w?.close();
    w = undefined;
  });

  it("a flipped byte in an embedding row: requests using it fail naming the row and tensor, /health says integrity failed, other prompts are served", async () => {
    w = await startSharded({ model: flipped, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS, hashesFrom: model });
    expect(await settled(w.url)).toMatchObject({ status: 200, body: { integrity: "verified" } });
    const named = new RegExp(`integrity check failed: embedding row ${row} \\(token id ${row}\\) of token_embd\\.weight .*sha256 [0-9a-f]{12}… does not match the plan's [0-9a-f]{12}…`);

    const plain = await complete(w.url, "tiny", { prompt: BAD_PROMPT, max_tokens: 3, temperature: 0 });
    expect(plain.status).toBeGreaterThanOrEqual(500);
    expect(plain.json?.choices).toBeUndefined();
    expect(plain.json?.error?.message).toMatch(named);

    const streamed = await complete(w.url, "tiny", { prompt: BAD_PROMPT, max_tokens: 3, temperature: 0, stream: true });
    const error = (streamed.json as any[]).find((e) => e.error);
    expect(error?.error?.message).toMatch(named);
    expect(streamed.text).toBe("");

    const ok = await complete(w.url, "tiny", { prompt: GOOD_PROMPT, max_tokens: 3, temperature: 0 });
    expect(ok.status).toBe(200);
    expect(ok.json.choices[0].text.length).toBeGreaterThan(0);

    const h = await health(w.url);
    expect(h.body).toMatchObject({ status: "ok", integrity: "failed", integrity_reason: expect.stringMatching(named) });
    expect(h.body.sharding.embedding_rows_verified).toBeGreaterThan(0);
    expect(w.logs()).toMatch(new RegExp(`edgelm: ${KEY.replace(".", "\\.")}: ${named.source}`));
  }, 180_000);

  it("a tampered hashes object is refused at load: integrity failed, nothing served, until the right one is uploaded", async () => {
    w = await startSharded({
      model,
      key: KEY,
      budgetMb: BUDGET_MB,
      context: CONTEXT,
      vars: { ...VARS, LOAD_RETRY_MS: "200" },
      hashesFrom: model,
      edit: (_, hashes) => {
        const t = hashes!.slice();
        t[row * 16] ^= 0xff;
        return t;
      },
    });
    await complete(w.url, "tiny", { prompt: GOOD_PROMPT, max_tokens: 1 });
    const h = await settled(w.url);
    expect(h).toMatchObject({ status: 503, body: { status: "failed", integrity: "failed", retry: "object_change", reason: expect.stringMatching(/the embedding hashes "tiny\.gguf\.embedding\.hashes": sha256 [0-9a-f]{12}… does not match the plan's/) } });
    expect((await complete(w.url, "tiny", { prompt: GOOD_PROMPT, max_tokens: 1 })).status).toBe(503);

    // Only the hashes object uploaded again: the coordinator sees the new upload and loads.
    await (await w.mf.getR2Bucket("MODELS", "edgelm")).put(plan.embedding.hashes!.key, rowHashes.slice().buffer);
    await new Promise((r) => setTimeout(r, 300));
    await complete(w.url, "tiny", { prompt: GOOD_PROMPT, max_tokens: 1 });
    await vi.waitFor(async () => expect(await health(w!.url)).toMatchObject({ status: 200, body: { integrity: "verified" } }), { timeout: 60_000, interval: 200 });
    expect((await complete(w.url, "tiny", { prompt: GOOD_PROMPT, max_tokens: 2 })).status).toBe(200);
  }, 180_000);

  const withoutRowHashes = (p: ShardPlan) => {
    delete p.embedding.hashes;
    return undefined;
  };

  it("a plan without row hashes serves as unverified", async () => {
    w = await startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS, hashesFrom: model, edit: withoutRowHashes });
    const r = await complete(w.url, "tiny", { prompt: GOOD_PROMPT, max_tokens: 2 });
    expect(r.status).toBe(200);
    expect(await health(w.url)).toMatchObject({ status: 200, body: { integrity: "unverified", sharding: { embedding_rows_verified: 0 } } });
  }, 180_000);

  it("REQUIRE_MANIFEST=true refuses a plan without row hashes, naming them", async () => {
    w = await startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: { ...VARS, REQUIRE_MANIFEST: "true" }, hashesFrom: model, edit: withoutRowHashes });
    const h = await settled(w.url);
    expect(h).toMatchObject({ status: 503, body: { status: "failed", integrity: "unverified", reason: expect.stringContaining("has no hashes of the embedding rows (embedding.hashes)") } });
  }, 180_000);
});
