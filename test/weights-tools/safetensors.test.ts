import { mkdtempSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bf16ToF32, f16ToF32, f32ToBF16, f32ToF16 } from "../../src/gguf/quant";
import { SafetensorsCheckpoint, SafetensorsFile, tensorFromArray, writeSafetensors } from "../../weights-tools/safetensors";

const dir = mkdtempSync(join(tmpdir(), "edgelm-st-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

function values(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.37 + seed) * (1 + i / 7) + (i % 5 === 0 ? 1e-6 : 0);
  return x;
}

/** A safetensors file from a literal header object and a data section. */
function rawFile(name: string, header: unknown, data = new Uint8Array(0), lengthOverride?: bigint): string {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

describe("safetensors round trip", () => {
  const a = values(6 * 10, 1);
  const b = values(10, 2);
  for (const [dtype, round] of [
    ["F32", (v: number) => Math.fround(v)],
    ["F16", (v: number) => f16ToF32(f32ToF16(v))],
    ["BF16", (v: number) => bf16ToF32(f32ToBF16(v))],
  ] as const) {
    it(`writes and reads ${dtype}`, async () => {
      const path = join(dir, `rt-${dtype}.safetensors`);
      await writeSafetensors(path, [tensorFromArray("a.weight", [6, 10], a), tensorFromArray("b.bias", [10], b)], dtype);
      const f = await SafetensorsFile.open(path);
      try {
        expect(f.metadata).toEqual({ format: "pt" });
        expect(f.names()).toEqual(["a.weight", "b.bias"]);
        expect(f.info("a.weight")).toMatchObject({ dtype, shape: [6, 10] });
        const all = await f.readRows("a.weight", 0, 6);
        expect(Array.from(all)).toEqual(Array.from(a, round));
        // A slice of rows is the same slice of values.
        expect(Array.from(await f.readRows("a.weight", 2, 3))).toEqual(Array.from(a.subarray(20, 50), round));
        expect(Array.from(await f.readRows("b.bias", 0, 1))).toEqual(Array.from(b, round));
        // Data starts 8-byte aligned, as the format requires.
        expect(f.info("a.weight").begin % 8).toBe(0);
        await expect(f.readRows("a.weight", 5, 2)).rejects.toThrow(/out of range/);
      } finally {
        await f.close();
      }
    });
  }

  it("reads a sharded checkpoint through model.safetensors.index.json", async () => {
    const sdir = mkdtempSync(join(dir, "sharded-"));
    await writeSafetensors(join(sdir, "model-00001-of-00002.safetensors"), [tensorFromArray("x", [2, 5], values(10, 3))], "F32");
    await writeSafetensors(join(sdir, "model-00002-of-00002.safetensors"), [tensorFromArray("y", [4], values(4, 4))], "BF16");
    writeFileSync(join(sdir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 48 }, weight_map: { x: "model-00001-of-00002.safetensors", y: "model-00002-of-00002.safetensors" } }));
    const c = await SafetensorsCheckpoint.open(sdir);
    try {
      expect(c.names().sort()).toEqual(["x", "y"]);
      expect(c.shape("y")).toEqual([4]);
      expect(Array.from(await c.readRows("x", 1, 1))).toEqual(Array.from(values(10, 3).subarray(5)));
      expect(Array.from(await c.readRows("y", 0, 1))).toEqual(Array.from(values(4, 4), (v) => bf16ToF32(f32ToBF16(v))));
    } finally {
      await c.close();
    }
  });

  it("rejects index files that point outside the folder or at the wrong shard", async () => {
    const sdir = mkdtempSync(join(dir, "badindex-"));
    await writeSafetensors(join(sdir, "s1.safetensors"), [tensorFromArray("x", [2], values(2, 0))]);
    writeFileSync(join(sdir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { x: "../s1.safetensors" } }));
    await expect(SafetensorsCheckpoint.open(sdir)).rejects.toThrow(/not a file name in this folder/);
    writeFileSync(join(sdir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { z: "s1.safetensors" } }));
    await expect(SafetensorsCheckpoint.open(sdir)).rejects.toThrow(/tensor z is mapped to s1.safetensors, which does not contain it/);
    writeFileSync(join(sdir, "model.safetensors.index.json"), "{nope");
    await expect(SafetensorsCheckpoint.open(sdir)).rejects.toThrow(/not valid JSON/);
  });

  it("says what is missing in an empty folder", async () => {
    await expect(SafetensorsCheckpoint.open(mkdtempSync(join(dir, "empty-")))).rejects.toThrow(/neither model.safetensors nor model.safetensors.index.json/);
  });
});

describe("hostile safetensors", () => {
  const ok = { w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } };
  const data16 = new Uint8Array(16);

  it("accepts the well-formed control case", async () => {
    const f = await SafetensorsFile.open(rawFile("ok.safetensors", { __metadata__: { format: "pt" }, ...ok }, data16));
    expect(f.shape("w")).toEqual([2, 2]);
    await f.close();
  });

  const cases: [string, () => string, RegExp][] = [
    ["a file shorter than the length field", () => { const p = join(dir, "short.safetensors"); writeFileSync(p, new Uint8Array(5)); return p; }, /too short/],
    ["an absurd header length", () => rawFile("absurd.safetensors", ok, data16, 1n << 60n), /header length \d+ is absurd/],
    ["a header longer than the file", () => rawFile("long.safetensors", ok, data16, 5000n), /exceeds the file .*truncated/],
    ["invalid JSON", () => rawFile("json.safetensors", '{"w": {', data16), /not valid JSON/],
    ["a JSON array header", () => rawFile("array.safetensors", "[1, 2]", data16), /not a JSON object/],
    ["offsets past the end (truncated data)", () => rawFile("trunc.safetensors", ok, new Uint8Array(8)), /tensor w: data_offsets \[0, 16\] run past the end/],
    ["shape × dtype ≠ byte range", () => rawFile("size.safetensors", { w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } }, data16), /tensor w: shape \[2, 3\] × F32 is 24 bytes but data_offsets span 16/],
    ["backwards offsets", () => rawFile("back.safetensors", { w: { dtype: "F32", shape: [0], data_offsets: [8, 4] } }, data16), /run backwards/],
    ["a negative dimension", () => rawFile("neg.safetensors", { w: { dtype: "F32", shape: [-2, 2], data_offsets: [0, 16] } }, data16), /shape .* is not a list of non-negative integers/],
    ["overlapping tensors", () => rawFile("overlap.safetensors", { a: { dtype: "F32", shape: [4], data_offsets: [0, 16] }, b: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, data16), /overlap/],
    ["missing data_offsets", () => rawFile("nooff.safetensors", { w: { dtype: "F32", shape: [2] } }, data16), /data_offsets undefined is not \[begin, end\]/],
  ];
  for (const [what, make, err] of cases) {
    it(`rejects ${what}`, async () => {
      await expect(SafetensorsFile.open(make())).rejects.toThrow(err);
    });
  }

  it("names the tensor and dtype it cannot convert", async () => {
    const f = await SafetensorsFile.open(rawFile("i64.safetensors", { ids: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, data16));
    try {
      await expect(f.readRows("ids", 0, 1)).rejects.toThrow(/tensor ids has dtype I64; only F32, F16 and BF16/);
    } finally {
      await f.close();
    }
  });

  it("reports a missing file plainly", async () => {
    await expect(SafetensorsFile.open(join(dir, "nope.safetensors"))).rejects.toThrow(/no such file/);
  });
});
