import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { IntegrityError, ManifestCheck, manifestPathFor, parseManifest } from "../../src/gguf/manifest";
import { parseGGUFBuffer } from "../../src/gguf/reader";
import { convertHF } from "../../weights-tools/convert";
import { writeManifest } from "../../weights-tools/manifest";
import { writeSynthGGUF } from "../../weights-tools/synth";
import { customHF, tempDir } from "./helpers";

const root = tempDir("manifest");
afterAll(() => rmSync(root, { recursive: true, force: true }));

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** The manifest beside `path`, checked against hashes recomputed here from the file's bytes. */
async function expectManifestMatches(path: string): Promise<void> {
  const bytes = new Uint8Array(readFileSync(path));
  const manifest = parseManifest(readFileSync(manifestPathFor(path), "utf8"), manifestPathFor(path));
  const { header, tensor } = await parseGGUFBuffer(bytes);
  expect(manifest.file).toEqual({ bytes: bytes.length, sha256: sha(bytes) });
  expect(manifest.header).toEqual({ bytes: header.dataOffset, sha256: sha(bytes.subarray(0, header.dataOffset)) });
  expect(Object.keys(manifest.tensors).sort()).toEqual(header.tensors.map((t) => t.name).sort());
  for (const t of header.tensors) {
    expect(manifest.tensors[t.name], t.name).toEqual({ offset: header.dataOffset + t.offset, bytes: t.byteLength, sha256: sha(tensor(t.name)) });
  }
}

describe("the manifest beside a GGUF", () => {
  it("synth writes one that matches the file's bytes", async () => {
    const out = join(root, "synth.gguf");
    await writeSynthGGUF("tiny", out, "q4_0");
    await expectManifestMatches(out);
  });

  it("convert writes one that matches the file's bytes", async () => {
    const hf = await customHF(join(root, "hf"), () => {});
    const out = join(root, "convert.gguf");
    await convertHF(hf, out, "q8_0", { onWarning: () => {} });
    await expectManifestMatches(out);
  });

  it("the edgelm synth command writes it too", () => {
    const out = join(root, "cli.gguf");
    const r = spawnSync(process.execPath, ["bin/edgelm.mjs", "synth", "--preset", "tiny", "--type", "f16", "--out", out], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(manifestPathFor(out))).toBe(true);
  });

  it("writeManifest describes a file that changed: the new bytes, not the old", async () => {
    const out = join(root, "changed.gguf");
    await writeSynthGGUF("tiny", out, "f32");
    const before = parseManifest(readFileSync(manifestPathFor(out), "utf8"), "m");
    const bytes = readFileSync(out);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(out, bytes);
    const after = await writeManifest(out);
    expect(after.file.sha256).not.toBe(before.file.sha256);
    expect(after.tensors["output.weight"].sha256).not.toBe(before.tensors["output.weight"].sha256);
    expect(after.tensors["token_embd.weight"]).toEqual(before.tensors["token_embd.weight"]);
    await expectManifestMatches(out);
  });

  it("a check names the tensor whose bytes differ, and catches a short file and a changed header", async () => {
    const out = join(root, "check.gguf");
    await writeSynthGGUF("tiny", out, "q4_0");
    const manifest = parseManifest(readFileSync(manifestPathFor(out), "utf8"), "m.json");
    const bytes = new Uint8Array(readFileSync(out));
    const { header, tensor } = await parseGGUFBuffer(bytes);
    const check = new ManifestCheck(manifest, "m.json");
    check.size(bytes.length);
    await check.header(bytes.subarray(0, header.dataOffset));
    const t = header.tensorByName.get("blk.1.ffn_up.weight")!;
    await check.tensor(t.name, header.dataOffset + t.offset, tensor(t.name));
    const flipped = tensor(t.name).slice();
    flipped[7] ^= 0x10;
    await expect(check.tensor(t.name, header.dataOffset + t.offset, flipped)).rejects.toThrow(/tensor blk\.1\.ffn_up\.weight: sha256 [0-9a-f]{12}… does not match the manifest's [0-9a-f]{12}…/);
    expect(() => check.size(bytes.length - 100)).toThrow(/100 fewer .*truncated/);
    const head = bytes.slice(0, header.dataOffset);
    head[40] ^= 1;
    await expect(check.header(head)).rejects.toThrow(IntegrityError);
    await expect(check.tensor("nope", 0, new Uint8Array(1))).rejects.toThrow(/tensor nope is not in the manifest/);
  });

  it("a malformed manifest is refused with what is wrong", () => {
    expect(() => parseManifest("{", "x")).toThrow(/not valid JSON/);
    expect(() => parseManifest(JSON.stringify({ format: "other" }), "x")).toThrow(/format "other"/);
    const good = { format: "edgelm-manifest/1", file: { bytes: 1, sha256: "a".repeat(64) }, header: { bytes: 1, sha256: "b".repeat(64) }, tensors: {} };
    expect(parseManifest(JSON.stringify(good), "x").file.bytes).toBe(1);
    expect(() => parseManifest(JSON.stringify({ ...good, tensors: { t: { offset: -1, bytes: 1, sha256: "c".repeat(64) } } }), "x")).toThrow(/tensors\["t"\]\.offset/);
    expect(() => parseManifest(JSON.stringify({ ...good, header: { bytes: 1, sha256: "XYZ" } }), "x")).toThrow(/header\.sha256/);
  });

  it("tensor names are only names: __proto__ is a tensor, constructor is not in an empty manifest", () => {
    const entry = { offset: 64, bytes: 32, sha256: "d".repeat(64) };
    const text = `{"format":"edgelm-manifest/1","file":{"bytes":96,"sha256":"${"a".repeat(64)}"},"header":{"bytes":64,"sha256":"${"b".repeat(64)}"},"tensors":{"__proto__":${JSON.stringify(entry)}}}`;
    const check = new ManifestCheck(parseManifest(text, "x"), "x");
    expect(check.expect("__proto__", 64, 32)).toEqual(entry);
    expect(() => check.expect("constructor", 64, 32)).toThrow(/tensor constructor is not in the manifest/);
  });
});
