/**
 * Hugging Face safetensors files: the 8-byte little-endian header length, a JSON header, then raw
 * little-endian tensor bytes. Tensors are read by offset through a file handle, so a 3.3 GB
 * checkpoint is never held in memory; sharded checkpoints are joined through
 * `model.safetensors.index.json`. Every header field is checked before it is trusted.
 */
import { existsSync } from "node:fs";
import { open, readFile, type FileHandle } from "node:fs/promises";
import { writeAtomically } from "../src/gguf/node";
import { basename, join } from "node:path";
import { f16ToF32, f32ToBF16, f32ToF16 } from "../src/gguf/quant";

/** dtypes we convert to f32. */
export type FloatDtype = "F32" | "F16" | "BF16";

/** Element sizes of every dtype safetensors defines, so offsets of tensors we never read are still checked. */
const DTYPE_SIZE: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2,
  U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8,
};

/** The safetensors reference implementation refuses headers over 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

export interface SafetensorsTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

/** A source of f32 rows: the one interface convert, synth and the writer all speak. */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  shape(name: string): number[];
  /** Rows [start, start+count) of the tensor viewed as [shape[0], rest…]; a 1-D tensor is one row. */
  readRows(name: string, start: number, count: number): Promise<Float32Array>;
}

/** Rows and row length of a shape: 1-D (and 0-D) tensors are a single row. */
export function rowsOf(shape: readonly number[]): { rows: number; rowLength: number } {
  if (shape.length <= 1) return { rows: 1, rowLength: shape[0] ?? 1 };
  return { rows: shape[0], rowLength: shape.slice(1).reduce((a, b) => a * b, 1) };
}

let f16Table: Float32Array | undefined;
/** All 65536 halves decoded once: a table lookup is far faster than decoding each element. */
function f16Lookup(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/** Raw little-endian bytes of `dtype` → f32. `bytes` must start at an even offset of its own buffer. */
export function decodeFloats(dtype: FloatDtype, bytes: Uint8Array): Float32Array {
  // Typed-array views use the platform's byte order; every platform Node runs on is little-endian.
  switch (dtype) {
    case "F32":
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    case "F16": {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const t = f16Lookup();
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = t[h[i]];
      return out;
    }
    case "BF16": {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const out = new Uint32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = h[i] << 16;
      return new Float32Array(out.buffer);
    }
  }
}

/** f32 → raw little-endian bytes of `dtype` (round to nearest even). */
export function encodeFloats(dtype: FloatDtype, x: Float32Array): Uint8Array {
  switch (dtype) {
    case "F32":
      return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
    case "F16": {
      const out = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = f32ToF16(x[i]);
      return new Uint8Array(out.buffer);
    }
    case "BF16": {
      const out = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = f32ToBF16(x[i]);
      return new Uint8Array(out.buffer);
    }
  }
}

function isFloatDtype(d: string): d is FloatDtype {
  return d === "F32" || d === "F16" || d === "BF16";
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Parses and checks a header against the file size; exported for tests of hostile input. */
export function parseSafetensorsHeader(json: string, dataStart: number, fileSize: number, where: string): { tensors: Map<string, SafetensorsTensor>; metadata: Record<string, string> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (e) {
    throw new SafetensorsError(`${where}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new SafetensorsError(`${where}: header is not a JSON object`);
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) throw new SafetensorsError(`${where}: __metadata__ is not an object`);
      metadata = entry as Record<string, string>;
      continue;
    }
    const bad = (why: string) => new SafetensorsError(`${where}: tensor ${name}: ${why}`);
    if (typeof entry !== "object" || entry === null) throw bad("entry is not an object");
    const { dtype, shape, data_offsets: offs } = entry as Record<string, unknown>;
    if (typeof dtype !== "string") throw bad("dtype is missing");
    if (!Array.isArray(shape) || !shape.every(isCount)) throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount)) throw bad(`data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    const [b, e] = offs as [number, number];
    if (b > e) throw bad(`data_offsets [${b}, ${e}] run backwards`);
    if (e > dataSize) throw bad(`data_offsets [${b}, ${e}] run past the end of the file (${dataSize} data bytes; truncated?)`);
    const size = DTYPE_SIZE[dtype];
    if (size !== undefined) {
      const count = (shape as number[]).reduce((x, y) => x * y, 1);
      if (count * size !== e - b) throw bad(`shape [${shape.join(", ")}] × ${dtype} is ${count * size} bytes but data_offsets span ${e - b}`);
    }
    tensors.set(name, { name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  const sorted = [...tensors.values()].sort((x, y) => x.begin - y.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) throw new SafetensorsError(`${where}: tensors ${sorted[i - 1].name} and ${sorted[i].name} overlap`);
  }
  return { tensors, metadata };
}

async function readExactly(fh: FileHandle, dest: Uint8Array, position: number, where: string): Promise<void> {
  let done = 0;
  while (done < dest.length) {
    const { bytesRead } = await fh.read(dest, done, dest.length - done, position + done);
    if (bytesRead === 0) throw new SafetensorsError(`${where}: unexpected end of file at offset ${position + done}`);
    done += bytesRead;
  }
}

/** One .safetensors file, open for reading. */
export class SafetensorsFile implements TensorSource {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly tensors: Map<string, SafetensorsTensor>,
    readonly metadata: Record<string, string>,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Error(err.code === "ENOENT" ? `no such file: ${path}` : `cannot open ${path}: ${err.message}`);
    }
    try {
      const { size } = await fh.stat();
      if (size < 8) throw new SafetensorsError(`${path}: ${size} bytes is too short for a safetensors file`);
      const lenBuf = new Uint8Array(8);
      await readExactly(fh, lenBuf, 0, path);
      const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`${path}: header length ${n} is absurd (limit ${MAX_HEADER_BYTES}); not a safetensors file?`);
      if (n > BigInt(size - 8)) throw new SafetensorsError(`${path}: header length ${n} exceeds the file (${size} bytes); truncated?`);
      const headerBytes = new Uint8Array(Number(n));
      await readExactly(fh, headerBytes, 8, path);
      let json: string;
      try {
        json = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
      } catch {
        throw new SafetensorsError(`${path}: header is not UTF-8`);
      }
      const { tensors, metadata } = parseSafetensorsHeader(json, 8 + Number(n), size, path);
      return new SafetensorsFile(path, fh, tensors, metadata);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  info(name: string): SafetensorsTensor {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.path}: no tensor named ${name}`);
    return t;
  }
  shape(name: string): number[] {
    return this.info(name).shape;
  }

  /** The tensor's raw bytes (whole tensor; for tests and small tensors). */
  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const out = new Uint8Array(t.end - t.begin);
    await readExactly(this.fh, out, t.begin, this.path);
    return out;
  }

  async readRows(name: string, start: number, count: number): Promise<Float32Array> {
    const t = this.info(name);
    if (!isFloatDtype(t.dtype)) throw new SafetensorsError(`${this.path}: tensor ${name} has dtype ${t.dtype}; only F32, F16 and BF16 are supported`);
    const { rows, rowLength } = rowsOf(t.shape);
    if (start < 0 || count < 0 || start + count > rows) throw new RangeError(`${name}: rows [${start}, ${start + count}) out of range (${rows} rows)`);
    const es = DTYPE_SIZE[t.dtype];
    const bytes = new Uint8Array(count * rowLength * es);
    await readExactly(this.fh, bytes, t.begin + start * rowLength * es, this.path);
    return decodeFloats(t.dtype, bytes);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** A checkpoint folder: `model.safetensors`, or the shards named by `model.safetensors.index.json`. */
export class SafetensorsCheckpoint implements TensorSource {
  private constructor(
    readonly files: SafetensorsFile[],
    private readonly owner: Map<string, SafetensorsFile>,
  ) {}

  static async open(dir: string): Promise<SafetensorsCheckpoint> {
    const indexPath = join(dir, "model.safetensors.index.json");
    const singlePath = join(dir, "model.safetensors");
    if (existsSync(indexPath)) return SafetensorsCheckpoint.openIndex(dir, indexPath);
    if (existsSync(singlePath)) {
      const f = await SafetensorsFile.open(singlePath);
      return new SafetensorsCheckpoint([f], new Map(f.names().map((n) => [n, f])));
    }
    throw new Error(`${dir}: neither model.safetensors nor model.safetensors.index.json is there`);
  }

  private static async openIndex(dir: string, indexPath: string): Promise<SafetensorsCheckpoint> {
    let index: unknown;
    try {
      index = JSON.parse(await readFile(indexPath, "utf8"));
    } catch (e) {
      throw new SafetensorsError(`${indexPath}: not valid JSON (${(e as Error).message})`);
    }
    const map = (index as { weight_map?: unknown })?.weight_map;
    if (typeof map !== "object" || map === null || Array.isArray(map)) throw new SafetensorsError(`${indexPath}: no weight_map object`);
    const shards = new Map<string, SafetensorsFile>();
    const owner = new Map<string, SafetensorsFile>();
    try {
      for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
        // A shard name is a plain file name in the same folder; anything else could read outside it.
        if (typeof shard !== "string" || shard !== basename(shard) || shard === "." || shard === ".." || shard === "") {
          throw new SafetensorsError(`${indexPath}: tensor ${tensor}: shard ${JSON.stringify(shard)} is not a file name in this folder`);
        }
        let f = shards.get(shard);
        if (!f) {
          f = await SafetensorsFile.open(join(dir, shard));
          shards.set(shard, f);
        }
        if (!f.has(tensor)) throw new SafetensorsError(`${indexPath}: tensor ${tensor} is mapped to ${shard}, which does not contain it`);
        owner.set(tensor, f);
      }
    } catch (e) {
      await Promise.all([...shards.values()].map((f) => f.close()));
      throw e;
    }
    return new SafetensorsCheckpoint([...shards.values()], owner);
  }

  names(): string[] {
    return [...this.owner.keys()];
  }
  has(name: string): boolean {
    return this.owner.has(name);
  }
  info(name: string): SafetensorsTensor {
    const f = this.owner.get(name);
    if (!f) throw new SafetensorsError(`checkpoint has no tensor named ${name}`);
    return f.info(name);
  }
  shape(name: string): number[] {
    return this.info(name).shape;
  }
  readRows(name: string, start: number, count: number): Promise<Float32Array> {
    const f = this.owner.get(name);
    if (!f) throw new SafetensorsError(`checkpoint has no tensor named ${name}`);
    return f.readRows(name, start, count);
  }
  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

// ------------------------------------------------------------------ writer

export interface SafetensorsWriteTensor {
  name: string;
  shape: number[];
  /** Rows in order; called repeatedly with increasing `start` so only a slice is in memory. */
  rows(start: number, count: number): Float32Array | Promise<Float32Array>;
}

/** A whole in-memory array as a writable tensor. */
export function tensorFromArray(name: string, shape: number[], data: Float32Array): SafetensorsWriteTensor {
  const { rowLength } = rowsOf(shape);
  return { name, shape, rows: (start, count) => data.subarray(start * rowLength, (start + count) * rowLength) };
}

/** Rows per slice when streaming: about 4M elements. */
function rowsPerChunk(rowLength: number): number {
  return Math.max(1, Math.floor((1 << 22) / Math.max(1, rowLength)));
}

/**
 * Writes a .safetensors file (written to a temporary name, then renamed). All tensors share
 * `dtype`; `opts.metadata` goes to `__metadata__` (default {"format": "pt"}, as transformers writes).
 */
export async function writeSafetensors(
  path: string,
  tensors: SafetensorsWriteTensor[],
  dtype: FloatDtype = "F32",
  opts: { metadata?: Record<string, string>; onTensor?: (index: number, total: number, name: string, bytesWritten: number) => void } = {},
): Promise<void> {
  const metadata = opts.metadata ?? { format: "pt" };
  const es = DTYPE_SIZE[dtype];
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    if (t.name === "__metadata__" || Object.hasOwn(header, t.name)) throw new Error(`writeSafetensors: duplicate or reserved tensor name ${t.name}`);
    const size = t.shape.reduce((a, b) => a * b, 1) * es;
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  // The format pads the header with spaces so tensor data starts 8-byte aligned.
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  await writeAtomically(path, async (put) => {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
    await put(len);
    let pos = await put(headerBytes);
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      const { rows, rowLength } = rowsOf(t.shape);
      const step = rowsPerChunk(rowLength);
      for (let r = 0; r < rows; r += step) {
        const n = Math.min(step, rows - r);
        const x = await t.rows(r, n);
        if (x.length !== n * rowLength) throw new Error(`writeSafetensors: ${t.name} rows ${r}..${r + n} gave ${x.length} values, expected ${n * rowLength}`);
        pos = await put(encodeFloats(dtype, x));
      }
      opts.onTensor?.(i + 1, tensors.length, t.name, pos);
    }
  });
}
