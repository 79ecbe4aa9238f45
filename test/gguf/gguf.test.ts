import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bool, f32, i32Array, str, strArray, u32 } from "../../src/gguf/metadata";
import { dequantize, quantize } from "../../src/gguf/quant";
import { parseGGUFBuffer, readGGUFStream } from "../../src/gguf/reader";
import { TensorType, ValueType, type Metadata } from "../../src/gguf/types";
import { encodeGGUF, type GGUFSpec } from "../../src/gguf/writer";
import { openGGUF, writeGGUFFile } from "../../src/gguf/node";

const dir = await mkdtemp(join(tmpdir(), "edgelm-gguf-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

function everyValueType(): Metadata {
  return new Map([
    ["general.architecture", str("stablelm")],
    ["t.u8", { type: ValueType.UINT8, value: 255 }],
    ["t.i8", { type: ValueType.INT8, value: -128 }],
    ["t.u16", { type: ValueType.UINT16, value: 65535 }],
    ["t.i16", { type: ValueType.INT16, value: -32768 }],
    ["t.u32", u32(4294967295)],
    ["t.i32", { type: ValueType.INT32, value: -2147483648 }],
    ["t.f32", f32(1.5)],
    ["t.bool", bool(true)],
    ["t.string", str("héllo ✓ 🦙")],
    ["t.u64", { type: ValueType.UINT64, value: 2n ** 64n - 1n }],
    ["t.i64", { type: ValueType.INT64, value: -(2n ** 63n) }],
    ["t.f64", { type: ValueType.FLOAT64, value: Math.PI }],
    ["t.strings", strArray(["a", "", "Ġb"])],
    ["t.ints", i32Array([1, -2, 3])],
    ["t.nested", { type: ValueType.ARRAY, itemType: ValueType.ARRAY, value: [i32Array([1]), strArray(["x", "y"])] }],
    ["t.empty", { type: ValueType.ARRAY, itemType: ValueType.FLOAT32, value: [] }],
  ]);
}

const TYPES = [TensorType.F32, TensorType.F16, TensorType.BF16, TensorType.Q8_0, TensorType.Q4_0, TensorType.Q6_K];

function specWithTensors(alignment?: number): { spec: GGUFSpec; values: Map<string, Float32Array> } {
  const values = new Map<string, Float32Array>();
  const tensors = TYPES.map((type, i) => {
    const dims = [256, 3];
    const x = Float32Array.from({ length: 768 }, (_, j) => Math.sin(j * 0.37 + i) * (1 + (j % 7)));
    values.set(`t${i}`, dequantize(type, quantize(type, x), x.length));
    return { name: `t${i}`, type, dims, data: quantize(type, x) };
  });
  const metadata = everyValueType();
  if (alignment) metadata.set("general.alignment", u32(alignment));
  return { spec: { metadata, tensors }, values };
}

describe("GGUF round trip", () => {
  it("keeps every metadata value type and every tensor type, in memory", async () => {
    const { spec, values } = specWithTensors();
    const bytes = await encodeGGUF(spec);
    const { header, tensor } = await parseGGUFBuffer(bytes);
    expect(header.version).toBe(3);
    expect(header.metadata).toEqual(spec.metadata);
    for (const [i, type] of TYPES.entries()) {
      const info = header.tensorByName.get(`t${i}`)!;
      expect(info.type).toBe(type);
      expect(info.dims).toEqual([256, 3]);
      expect(info.offset % 32).toBe(0);
      expect(dequantize(type, tensor(`t${i}`), 768)).toEqual(values.get(`t${i}`));
    }
  });

  it("honours general.alignment and reads from a file handle and from a stream", async () => {
    const { spec, values } = specWithTensors(64);
    const path = join(dir, "aligned.gguf");
    const progress: string[] = [];
    await writeGGUFFile(path, spec, (_i, _n, name) => progress.push(name));
    expect(progress).toEqual(TYPES.map((_, i) => `t${i}`));
    const file = await openGGUF(path);
    expect(file.alignment).toBe(64);
    expect(file.dataOffset % 64).toBe(0);
    for (const t of file.tensors) {
      expect(t.offset % 64).toBe(0);
      expect(dequantize(t.type, await file.readTensor(t.name), t.count)).toEqual(values.get(t.name));
    }
    await file.close();

    // A ReadableStream in small, odd-sized chunks, as an R2 body may arrive.
    const bytes = await readFile(path);
    let at = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= bytes.length) return c.close();
        const n = 1 + ((at * 7919) % 4093);
        c.enqueue(new Uint8Array(bytes.subarray(at, at + n)));
        at += n;
      },
    });
    // The same bytes as a byte stream (R2 and fetch bodies in workerd are), which is read in large
    // BYOB reads: each answers the odd-sized piece its pull has, so reads straddle items too.
    let at2 = 0;
    const byteStream = new ReadableStream({
      type: "bytes",
      pull(c) {
        const req = c.byobRequest!;
        const view = req.view as Uint8Array;
        if (at2 >= bytes.length) {
          c.close();
          return req.respond(0);
        }
        const n = Math.min(view.byteLength, 1 + ((at2 * 7919) % 4093), bytes.length - at2);
        view.set(bytes.subarray(at2, at2 + n));
        at2 += n;
        req.respond(n);
      },
    });
    for (const s of [stream, byteStream]) {
      const got = new Map<string, Uint8Array>();
      const header = await readGGUFStream(s as ReadableStream<Uint8Array>, (info) => (info.name === "t1" ? undefined : (got.set(info.name, new Uint8Array(info.byteLength)), got.get(info.name))), { size: bytes.length });
      expect(header.metadata).toEqual(spec.metadata);
      expect([...got.keys()].sort()).toEqual(["t0", "t2", "t3", "t4", "t5"]);
      for (const [name, b] of got) expect(dequantize(header.tensorByName.get(name)!.type, b, 768)).toEqual(values.get(name));
    }
    expect(at2).toBe(bytes.length);
  });

  it("writes no partial file when a tensor's data is wrong", async () => {
    const path = join(dir, "bad.gguf");
    const spec: GGUFSpec = { metadata: new Map(), tensors: [{ name: "w", type: TensorType.F32, dims: [4], data: new Uint8Array(12) }] };
    await expect(writeGGUFFile(path, spec)).rejects.toThrow(/needs 16 bytes, got 12/);
    await expect(readFile(path)).rejects.toThrow(/ENOENT/);
  });

  it("refuses values that do not fit their declared type", async () => {
    await expect(encodeGGUF({ metadata: new Map([["k", u32(-1)]]), tensors: [] })).rejects.toThrow(/metadata k/);
  });
});

describe("hostile GGUF files fail with a clear error", () => {
  const good = async () => encodeGGUF(specWithTensors().spec);
  const patch = (b: Uint8Array, at: number, write: (dv: DataView) => void) => {
    const c = new Uint8Array(b);
    write(new DataView(c.buffer, at));
    return c;
  };
  // Header layout: magic 0, version 4, tensor count 8, kv count 16, first key length 24.
  const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ["bad magic", (b) => patch(b, 0, (d) => d.setUint32(0, 0x46554746, true)), /bad magic/],
    ["unsupported version", (b) => patch(b, 4, (d) => d.setUint32(0, 1, true)), /unsupported GGUF version 1/],
    ["absurd tensor count", (b) => patch(b, 8, (d) => d.setBigUint64(0, 2n ** 60n, true)), /tensor count .* limit/],
    ["absurd metadata count", (b) => patch(b, 16, (d) => d.setBigUint64(0, 2n ** 40n, true)), /metadata count .* limit/],
    ["absurd string length", (b) => patch(b, 24, (d) => d.setBigUint64(0, 2n ** 62n, true)), /length of metadata key #0 is \d+, more than the limit/],
    ["string past the end", (b) => patch(b, 24, (d) => d.setBigUint64(0, 1n << 20n, true)), /runs past the end/],
    ["truncated header", (b) => b.subarray(0, 100), /truncated|past the end/],
    ["truncated data", (b) => b.subarray(0, b.length - 100), /tensor t5 .* is out of bounds/],
    ["empty file", () => new Uint8Array(0), /not a GGUF file/],
  ];
  for (const [name, mutate, message] of cases) {
    it(name, async () => {
      const bytes = mutate(await good());
      await expect(parseGGUFBuffer(bytes)).rejects.toThrow(message);
      const path = join(dir, `${name.replace(/\W/g, "_")}.gguf`);
      await writeFile(path, bytes);
      await expect(openGGUF(path)).rejects.toThrow(message);
    });
  }

  it("bad tensor infos: unknown type, misaligned offset, overlap, zero dims", async () => {
    const one = (dims: number[], type: number, offset: number, second?: [string, number]) => {
      const w = [] as number[];
      const u32le = (v: number) => w.push(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255);
      const u64le = (v: number) => (u32le(v), u32le(0));
      const s = (t: string) => (u64le(t.length), w.push(...Buffer.from(t)));
      u32le(0x46554747), u32le(3), u64le(second ? 2 : 1), u64le(0);
      const info = (name: string, off: number) => (s(name), u32le(dims.length), dims.forEach(u64le), u32le(type), u64le(off));
      info("w", offset);
      if (second) info(second[0], second[1]);
      while (w.length % 32) w.push(0);
      for (let i = 0; i < 4096; i++) w.push(0);
      return new Uint8Array(w);
    };
    await expect(parseGGUFBuffer(one([32], 99, 0))).rejects.toThrow(/tensor w: unknown tensor type 99/);
    await expect(parseGGUFBuffer(one([32], 0, 4))).rejects.toThrow(/not a multiple of the alignment/);
    await expect(parseGGUFBuffer(one([32], 0, 0, ["v", 64]))).rejects.toThrow(/overlap/);
    await expect(parseGGUFBuffer(one([0], 0, 0))).rejects.toThrow(/dimension 0 is 0/);
    await expect(parseGGUFBuffer(one([33], 2, 0))).rejects.toThrow(/not a whole number of Q4_0 blocks/);
    await expect(parseGGUFBuffer(one([2 ** 30, 2 ** 30], 0, 0))).rejects.toThrow(/out of bounds|absurd/);
    await expect(parseGGUFBuffer(one([32, 1, 1, 1, 1], 0, 0))).rejects.toThrow(/5 dimensions/);
  });

  it("a stream that ends early is an error, not a hang", async () => {
    const bytes = (await good()).subarray(0, 2000);
    const stream = new ReadableStream<Uint8Array>({ start(c) { c.enqueue(bytes); c.close(); } });
    await expect(readGGUFStream(stream, () => undefined)).rejects.toThrow(/truncated/);
  });

  it("a missing file names the path", async () => {
    await expect(openGGUF(join(dir, "nope.gguf"))).rejects.toThrow(/no such file: .*nope\.gguf/);
  });
});
