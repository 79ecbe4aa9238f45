/**
 * Hostile tensors are refused at load, by name: a block whose f16 scale is
 * NaN or infinite, a tensor shorter than its shape, and an element type no
 * engine computes with (Q8_1, Q8_K) — in the scan itself, the reference
 * loader, the WASM engine (file and stream loaders) and the shard planner.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadWasmEngineFromStream } from "../../src/engine/index";
import { compileKernelModules, loadWasmEngine } from "../../src/engine/node";
import { openGGUF, writeGGUFFile } from "../../src/gguf/node";
import { quantize, tensorByteLength } from "../../src/gguf/quant";
import { checkBlockScales } from "../../src/gguf/scale-check";
import { TensorType } from "../../src/gguf/types";
import { loadReferenceModel } from "../../src/model/node";
import { loadWeights } from "../../src/model/weights";
import { configFromGGUF } from "../../src/model/config";
import { planShards } from "../../src/shard/plan";
import { synthGGUF } from "../../weights-tools/fixtures";
import { streamOf } from "../engine/helpers";

const dir = mkdtempSync(join(tmpdir(), "edgelm-scale-check-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const values = Float32Array.from({ length: 512 }, (_, i) => Math.sin(i) * 0.1);
const setHalf = (b: Uint8Array, o: number, h: number) => {
  b[o] = h & 0xff;
  b[o + 1] = h >> 8;
};

describe("checkBlockScales", () => {
  // [type, block bytes, offset of each f16 scale, its name]
  const cases: [TensorType, number, [number, string][]][] = [
    [TensorType.Q4_0, 18, [[0, "d"]]],
    [TensorType.Q4_1, 20, [[0, "d"], [2, "m"]]],
    [TensorType.Q5_0, 22, [[0, "d"]]],
    [TensorType.Q5_1, 24, [[0, "d"], [2, "m"]]],
    [TensorType.Q8_0, 34, [[0, "d"]]],
    [TensorType.Q2_K, 84, [[80, "d"], [82, "dmin"]]],
    [TensorType.Q3_K, 110, [[108, "d"]]],
    [TensorType.Q4_K, 144, [[0, "d"], [2, "dmin"]]],
    [TensorType.Q5_K, 176, [[0, "d"], [2, "dmin"]]],
    [TensorType.Q6_K, 210, [[208, "d"]]],
  ];
  for (const [type, blockBytes, fields] of cases) {
    it(`type ${TensorType[type]}: a NaN or infinite ${fields.map((f) => f[1]).join("/")} is named with its block; a short tensor too`, () => {
      const info = { name: "blk.0.attn_q.weight", type, dims: [256, 2] };
      const good = quantize(type, values);
      expect(() => checkBlockScales(info, good)).not.toThrow();
      const blocks = good.length / blockBytes;
      for (const [at, field] of fields) {
        for (const [bits, kind] of [[0x7e00, "NaN"], [0x7c00, "infinite"], [0xfc00, "infinite"], [0x7c01, "NaN"]] as const) {
          const bad = good.slice();
          setHalf(bad, (blocks - 1) * blockBytes + at, bits);
          expect(() => checkBlockScales(info, bad)).toThrow(`tensor blk.0.attn_q.weight (${TensorType[type]}): block ${blocks - 1} has ${kind === "NaN" ? "a" : "an"} ${kind} scale ${field}`);
          // A run of blocks (a piece of a tensor as it arrives) counts blocks from its first.
          expect(() => checkBlockScales(info, bad.subarray(blockBytes), 1)).toThrow(`block ${blocks - 1} has`);
        }
      }
      if (fields.length === 2) {
        // The first bad block is named, and within one block the first field.
        const [[at0, f0], [at1, f1]] = fields;
        const both = good.slice();
        setHalf(both, blockBytes + at0, 0x7c00);
        setHalf(both, at1, 0x7e00);
        expect(() => checkBlockScales(info, both)).toThrow(`block 0 has a NaN scale ${f1}`);
        setHalf(both, at0, 0x7c00);
        expect(() => checkBlockScales(info, both)).toThrow(`block 0 has an infinite scale ${f0}`);
      }
      expect(() => checkBlockScales(info, good.subarray(0, good.length - 1))).toThrow(
        `tensor blk.0.attn_q.weight (${TensorType[type]}) is truncated: ${good.length - 1} of ${good.length} bytes, block ${blocks - 1} of ${blocks} incomplete`,
      );
    });
  }
});

/** A copy of the tiny Q4_0 fixture with block 7 of blk.1.ffn_down.weight given scale `bits`. */
async function poisoned(bits: number): Promise<string> {
  const src = await synthGGUF("tiny", "q4_0");
  const path = join(dir, `poisoned-${bits.toString(16)}.gguf`);
  copyFileSync(src, path);
  const f = await openGGUF(path);
  await f.close();
  const t = f.tensorByName.get("blk.1.ffn_down.weight")!;
  const bytes = readFileSync(path);
  setHalf(bytes, f.dataOffset + t.offset + 7 * 18, bits);
  writeFileSync(path, bytes);
  return path;
}

describe("loaders refuse a poisoned block scale by tensor and block", () => {
  const message = /tensor blk\.1\.ffn_down\.weight \(Q4_0\): block 7 has a NaN scale d/;

  it("the reference loader", async () => {
    await expect(loadReferenceModel(await poisoned(0x7e00))).rejects.toThrow(message);
  });

  it("the WASM engine, from a file (piecewise repack) and from a stream", async () => {
    const path = await poisoned(0x7e00);
    await expect(loadWasmEngine(path, { threads: 1, readChunkBytes: 4096 })).rejects.toThrow(message);
    const { modules, unavailable } = compileKernelModules();
    const bytes = new Uint8Array(readFileSync(path));
    await expect(loadWasmEngineFromStream(streamOf(bytes), { modules, unavailable, size: bytes.length })).rejects.toThrow(message);
  });

  it("the reference loader refuses a short tensor by name and block", async () => {
    const path = await synthGGUF("tiny", "q4_0");
    const f = await openGGUF(path);
    const config = configFromGGUF(f.metadata, f.tensorByName);
    const read = async (info: { name: string; byteLength: number }) => {
      const b = await f.readTensor(info as never);
      return info.name === "blk.0.attn_k.weight" ? b.subarray(0, b.length - 20) : b;
    };
    await expect(loadWeights(config, f.tensorByName, read)).rejects.toThrow(/tensor blk\.0\.attn_k\.weight \(Q4_0\) is truncated: .* bytes, block 126 of 128 incomplete/);
    await f.close();
  });
});

describe("an element type no engine computes with is refused at load, by tensor and type", () => {
  it("Q8_1 in the reference loader, the WASM engine and the shard planner", async () => {
    const src = await openGGUF(await synthGGUF("tiny", "q4_0"));
    const path = join(dir, "q8_1.gguf");
    await writeGGUFFile(path, {
      metadata: src.metadata,
      tensors: src.tensors.map((t) =>
        t.name === "blk.1.attn_q.weight"
          ? { name: t.name, type: TensorType.Q8_1, dims: t.dims, data: new Uint8Array(tensorByteLength(TensorType.Q8_1, t.dims)) }
          : { name: t.name, type: t.type, dims: t.dims, data: () => src.readTensor(t) },
      ),
    });
    await src.close();
    await expect(loadReferenceModel(path)).rejects.toThrow(/tensor blk\.1\.attn_q\.weight: unsupported tensor type Q8_1/);
    await expect(loadWasmEngine(path, { threads: 1 })).rejects.toThrow(/tensor blk\.1\.attn_q\.weight: unsupported tensor type Q8_1/);
    const f = await openGGUF(path);
    await f.close();
    expect(() => planShards(f, { budgetBytes: 64 << 20, contextLength: 64, sequences: 1 })).toThrow(/tensor blk\.1\.attn_q\.weight: unsupported tensor type Q8_1/);
  });
});
