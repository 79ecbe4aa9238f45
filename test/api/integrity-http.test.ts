/**
 * `edgelm serve` checks the GGUF against the manifest beside it while it loads, over real HTTP:
 * "verified" with a matching manifest, "unverified" without one (refused with
 * --require-manifest), and a flipped byte or a truncated file is refused — /health says why and
 * completions get 503. Both engines, and the wasm loader's piecewise reads (pieces arrive out of
 * order, and each is hashed before it is repacked).
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { loadWasmEngine } from "../../src/engine/node";
import { IntegrityError, manifestPathFor } from "../../src/gguf/manifest";
import { manifestCheckBeside } from "../../src/gguf/node";
import { parseGGUFBuffer } from "../../src/gguf/reader";
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { spawnEdgelm } from "../helpers/cli";

const dir = mkdtempSync(join(tmpdir(), "edgelm-integrity-http-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const model = () => synthGGUF("tiny", "q4_0");

/** A copy of the test model under `name`, edited by `edit`, with the original's manifest beside it (or none). */
async function copy(name: string, opts: { edit?: (bytes: Uint8Array, header: Awaited<ReturnType<typeof parseGGUFBuffer>>["header"]) => Uint8Array; manifest?: boolean } = {}): Promise<string> {
  const src = await model();
  const out = join(dir, name);
  let bytes: Uint8Array = new Uint8Array(readFileSync(src));
  if (opts.edit) bytes = opts.edit(bytes, (await parseGGUFBuffer(bytes)).header);
  writeFileSync(out, bytes);
  if (opts.manifest !== false) copyFileSync(manifestPathFor(src), manifestPathFor(out));
  return out;
}

const flip = (name: string) => (bytes: Uint8Array, header: { dataOffset: number; tensorByName: Map<string, { offset: number; byteLength: number }> }) => {
  const t = header.tensorByName.get(name)!;
  bytes[header.dataOffset + t.offset + t.byteLength - 3] ^= 0x20;
  return bytes;
};

async function serve(modelPath: string, opts: { engine?: "wasm" | "ref"; requireManifest?: boolean } = {}) {
  const lines: string[] = [];
  server = await startServer({ modelPath, port: 0, engine: opts.engine ?? "wasm", threads: 2, requireManifest: opts.requireManifest, log: (l) => lines.push(l) });
  const loaded = await server.ready.then(
    () => undefined,
    (e: Error) => e,
  );
  const health = await fetch(`${server.url}/health`);
  const completion = await fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "hi", max_tokens: 2 }) });
  return { error: loaded, health: { status: health.status, body: (await health.json()) as Record<string, unknown> }, completion: completion.status, lines };
}

describe("edgelm serve: model integrity", () => {
  for (const engine of ["wasm", "ref"] as const) {
    it(`${engine}: a model whose manifest matches is served as verified`, async () => {
      const r = await serve(await model(), { engine, requireManifest: true });
      expect(r.error).toBeUndefined();
      expect(r.health).toMatchObject({ status: 200, body: { integrity: "verified" } });
      expect(r.completion).toBe(200);
      expect(r.lines.join("\n")).toMatch(/verifying .*\.gguf against .*\.gguf\.manifest\.json/);
    }, 60_000);

    it(`${engine}: one flipped byte inside a tensor is refused, naming the tensor; never served`, async () => {
      const r = await serve(await copy(`flip-${engine}.gguf`, { edit: flip("blk.0.attn_v.weight") }), { engine });
      expect(r.error).toBeInstanceOf(IntegrityError);
      expect(r.error!.message).toMatch(/integrity check failed: tensor blk\.0\.attn_v\.weight: sha256 [0-9a-f]{12}… does not match the manifest's [0-9a-f]{12}…/);
      expect(r.health).toMatchObject({ status: 503, body: { status: "failed", integrity: "failed", reason: expect.stringContaining("blk.0.attn_v.weight") } });
      expect(r.completion).toBe(503);
    }, 60_000);
  }

  it("without a manifest the model is served as unverified; --require-manifest refuses it", async () => {
    const bare = await copy("bare.gguf", { manifest: false });
    const open = await serve(bare);
    expect(open.health).toMatchObject({ status: 200, body: { integrity: "unverified" } });
    expect(open.lines.join("\n")).toContain("no manifest beside bare.gguf: serving it unverified");
    await server!.close();
    server = undefined;
    const strict = await serve(bare, { requireManifest: true });
    expect(strict.health).toMatchObject({ status: 503, body: { status: "failed", integrity: "unverified", reason: expect.stringContaining("--require-manifest: there is no manifest") } });
    expect(strict.completion).toBe(503);
  }, 60_000);

  it("a truncated file is refused", async () => {
    const r = await serve(await copy("cut.gguf", { edit: (b) => b.subarray(0, b.length - 1000) }));
    expect(r.health).toMatchObject({ status: 503, body: { integrity: "failed", reason: expect.stringMatching(/1000 fewer than the manifest's \d+: truncated/) } });
    expect(r.completion).toBe(503);
  }, 60_000);

  it("a changed header (metadata) is refused before any tensor is read", async () => {
    // The first byte of the first metadata key's text ("general.…" → "General.…"): still a valid GGUF.
    const r = await serve(await copy("header.gguf", { edit: (b) => ((b[32] ^= 0x20), b) }));
    expect(r.health).toMatchObject({ status: 503, body: { integrity: "failed", reason: expect.stringMatching(/integrity check failed: the header: sha256/) } });
  }, 60_000);

  it("the wasm loader's small out-of-order pieces are hashed in order: a good file loads, a flipped one does not", async () => {
    const good = await model();
    const engine = await loadWasmEngine(good, { threads: 1, readChunkBytes: 4096, verify: await manifestCheckBeside(good) });
    await engine.close?.();
    const bad = await copy("pieces.gguf", { edit: flip("token_embd.weight") });
    await expect(loadWasmEngine(bad, { threads: 1, readChunkBytes: 4096, verify: await manifestCheckBeside(bad) })).rejects.toThrow(/tensor token_embd\.weight: sha256/);
  }, 60_000);

  it("the CLI: --require-manifest is in --help, and a model without one exits with the reason", async () => {
    const help = spawnEdgelm(["serve", "--help"]);
    expect(await help.exit).toBe(0);
    expect(help.stdout() + help.stderr()).toContain("--require-manifest");
    const run = spawnEdgelm(["serve", "--model", await copy("cli.gguf", { manifest: false }), "--port", "0"], { EDGELM_REQUIRE_MANIFEST: "true" });
    expect(await run.exit).not.toBe(0);
    expect(run.stderr()).toContain("--require-manifest: there is no manifest");
  }, 60_000);
});
