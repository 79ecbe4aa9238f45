/**
 * The Worker checks the GGUF it streams from R2 against the manifest beside it, in real workerd:
 * a model with a manifest is "verified", one without is "unverified" (refused under
 * REQUIRE_MANIFEST), and a flipped byte or a truncated object is refused — /health says why, the
 * log names the tensor and both hashes, and completions get 503, never an answer.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { manifestPathFor } from "../../src/gguf/manifest";
import { parseGGUFBuffer } from "../../src/gguf/reader";
import { putFile, startWorker, testModelPath, type WorkerUnderTest } from "./harness";

const dir = mkdtempSync(join(tmpdir(), "edgelm-integrity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let w: WorkerUnderTest | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

const KEY = "m.gguf";

/** A Worker whose bucket holds `model` under KEY, and `manifest` beside it when given. */
async function start(model: string, manifest: string | undefined, vars: Record<string, string> = {}): Promise<WorkerUnderTest> {
  const x = await startWorker({ vars: { MODEL_KEY: KEY, MODEL_ID: "m", LOAD_RETRY_MS: "60000", ...vars } });
  const bucket = await x.mf.getR2Bucket("MODELS");
  if (manifest) await putFile(bucket, manifestPathFor(KEY), manifest);
  await putFile(bucket, KEY, model);
  return x;
}

const health = async (x: WorkerUnderTest) => {
  const res = await fetch(`${x.url}/health`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

/** /health once the load has ended, either way. */
const settled = (x: WorkerUnderTest) =>
  vi.waitFor(
    async () => {
      const h = await health(x);
      expect(h.body.status).not.toBe("loading");
      return h;
    },
    { timeout: 30_000, interval: 50 },
  );

const complete = (x: WorkerUnderTest) => fetch(`${x.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "hi", max_tokens: 2 }) });

/** The test model with one byte of tensor `name` flipped, under a new path (its manifest still describes the original). */
async function flipped(name: string): Promise<string> {
  const bytes = new Uint8Array(readFileSync(await testModelPath()));
  const { header } = await parseGGUFBuffer(bytes);
  const t = header.tensorByName.get(name)!;
  bytes[header.dataOffset + t.offset + Math.floor(t.byteLength / 2)] ^= 0x04;
  const out = join(dir, `flipped-${name}.gguf`);
  writeFileSync(out, bytes);
  return out;
}

describe("Worker: model integrity", () => {
  it("a model whose manifest matches loads as verified and serves", async () => {
    const model = await testModelPath();
    w = await start(model, manifestPathFor(model), { REQUIRE_MANIFEST: "true" });
    const h = await settled(w);
    expect(h.status, JSON.stringify(h.body)).toBe(200);
    expect(h.body.integrity).toBe("verified");
    expect(w.logs()).toContain(`verifying against ${KEY}.manifest.json`);
    const res = await complete(w);
    expect(res.status).toBe(200);
  }, 60_000);

  it("without a manifest the model is served as unverified", async () => {
    w = await start(await testModelPath(), undefined);
    const h = await settled(w);
    expect(h.status).toBe(200);
    expect(h.body.integrity).toBe("unverified");
    expect(w.logs()).toContain("no manifest: unverified");
  }, 60_000);

  it("REQUIRE_MANIFEST=true refuses a model without one", async () => {
    w = await start(await testModelPath(), undefined, { REQUIRE_MANIFEST: "true" });
    const h = await settled(w);
    expect(h.status).toBe(503);
    expect(h.body).toMatchObject({ status: "failed", integrity: "unverified", reason: expect.stringContaining(`REQUIRE_MANIFEST is true and there is no manifest "${KEY}.manifest.json"`) });
    expect((await complete(w)).status).toBe(503);
  }, 60_000);

  it("one flipped byte inside a tensor is refused, naming the tensor; never served until the file is replaced", async () => {
    const model = await testModelPath();
    w = await start(await flipped("blk.1.ffn_down.weight"), manifestPathFor(model), { LOAD_RETRY_MS: "200" });
    const h = await settled(w);
    expect(h.status).toBe(503);
    expect(h.body).toMatchObject({ status: "failed", integrity: "failed", retry: "object_change" });
    expect(h.body.reason).toMatch(/integrity check failed: tensor blk\.1\.ffn_down\.weight: sha256 [0-9a-f]{12}… does not match the manifest's [0-9a-f]{12}…/);
    expect(w.logs()).toMatch(/loading m\.gguf failed .*tensor blk\.1\.ffn_down\.weight: sha256 [0-9a-f]{12}… does not match/);
    const res = await complete(w);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("blk.1.ffn_down.weight");

    // The good bytes under the same key: a later request sees the new upload, and it loads verified.
    await putFile(await w.mf.getR2Bucket("MODELS"), KEY, model);
    const fixed = await vi.waitFor(
      async () => {
        const h2 = await health(w!);
        expect(h2.status).toBe(200);
        return h2;
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(fixed.body.integrity).toBe("verified");
  }, 90_000);

  it("an in-place swap to a model that fails its check is refused naming the tensor; the old model serves on", async () => {
    const model = await testModelPath();
    w = await start(model, manifestPathFor(model), { ADMIN_KEY: "integrity-admin-key" });
    expect((await settled(w)).status).toBe(200);
    const bucket = await w.mf.getR2Bucket("MODELS");
    await putFile(bucket, manifestPathFor("bad.gguf"), manifestPathFor(model));
    await putFile(bucket, "bad.gguf", await flipped("blk.0.attn_q.weight"));
    const res = await fetch(`${w.url}/admin/reload`, { method: "POST", headers: { authorization: "Bearer integrity-admin-key" }, body: JSON.stringify({ key: "bad.gguf" }) });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(502);
    expect(body.error).toMatchObject({ code: "swap_failed", message: expect.stringContaining("tensor blk.0.attn_q.weight: sha256") });
    const h = await health(w);
    expect(h).toMatchObject({ status: 200, body: { integrity: "verified", model_key: KEY } });
    expect((await complete(w)).status).toBe(200);
  }, 90_000);

  it("a truncated object is refused", async () => {
    const model = await testModelPath();
    const bytes = readFileSync(model);
    const cut = join(dir, "cut.gguf");
    writeFileSync(cut, bytes.subarray(0, bytes.length - 4096));
    w = await start(cut, manifestPathFor(model));
    const h = await settled(w);
    expect(h.status).toBe(503);
    expect(h.body).toMatchObject({ status: "failed", integrity: "failed", reason: expect.stringMatching(/the file is \d+ bytes, 4096 fewer than the manifest's \d+: truncated/) });
    expect((await complete(w)).status).toBe(503);
  }, 60_000);
});
