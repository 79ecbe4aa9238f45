/**
 * GGUF header parser (docs/model.md, Container) over any ByteSource, and streaming placement
 * of tensor data. Hostile input fails with an error naming the problem; every
 * count and length is bounded before anything is allocated for it.
 */
import type { ManifestCheck } from "./manifest";
import { storageLayout, tensorByteLength, typeName } from "./quant";
import { BufferSource, StreamSource, type ByteSource } from "./source";
import { DEFAULT_ALIGNMENT, GGUF_MAGIC, ValueType, type MetaValue, type Metadata, type Scalar, type TensorInfo } from "./types";

class GGUFFormatError extends Error {
  override name = "GGUFFormatError";
}

export interface GGUFHeader {
  version: number;
  metadata: Metadata;
  tensors: TensorInfo[];
  tensorByName: Map<string, TensorInfo>;
  alignment: number;
  /** Absolute file offset of the data section. */
  dataOffset: number;
  /** Bytes from the start of the file to the end of the last tensor. */
  totalSize: number;
}

// Bounds no real model comes near; they stop a hostile header from asking for absurd allocations.
const LIMITS = {
  tensors: 1 << 20,
  kv: 1 << 20,
  stringBytes: 64 << 20,
  arrayItems: 1 << 26,
  dims: 4,
  elements: 2 ** 48,
};

const SCALAR_SIZE: Partial<Record<ValueType, number>> = {
  [ValueType.UINT8]: 1,
  [ValueType.INT8]: 1,
  [ValueType.UINT16]: 2,
  [ValueType.INT16]: 2,
  [ValueType.UINT32]: 4,
  [ValueType.INT32]: 4,
  [ValueType.FLOAT32]: 4,
  [ValueType.BOOL]: 1,
  [ValueType.UINT64]: 8,
  [ValueType.INT64]: 8,
  [ValueType.FLOAT64]: 8,
};

const decoder = new TextDecoder("utf-8", { fatal: true });

class HeaderParser {
  constructor(private readonly src: ByteSource) {}

  private left(): number {
    return this.src.size === undefined ? Infinity : this.src.size - this.src.position;
  }

  private async dv(n: number): Promise<DataView> {
    const b = await this.src.read(n);
    return new DataView(b.buffer, b.byteOffset, n);
  }
  async u32(): Promise<number> {
    return (await this.dv(4)).getUint32(0, true);
  }
  async u64(what: string, max: number): Promise<number> {
    const v = (await this.dv(8)).getBigUint64(0, true);
    if (v > BigInt(max)) throw new GGUFFormatError(`${what} is ${v}, more than the limit ${max}`);
    return Number(v);
  }

  async string(what: string): Promise<string> {
    const len = await this.u64(`length of ${what}`, LIMITS.stringBytes);
    if (len > this.left()) throw new GGUFFormatError(`${what}: string of ${len} bytes runs past the end of the file`);
    try {
      return decoder.decode(await this.src.read(len));
    } catch (e) {
      if (e instanceof TypeError) throw new GGUFFormatError(`${what}: string is not valid UTF-8`);
      throw e;
    }
  }

  async scalar(type: ValueType, what: string): Promise<Scalar> {
    switch (type) {
      case ValueType.STRING:
        return this.string(what);
      case ValueType.BOOL: {
        const b = (await this.src.read(1))[0];
        if (b > 1) throw new GGUFFormatError(`${what}: bool byte is ${b}, not 0 or 1`);
        return b === 1;
      }
    }
    const size = SCALAR_SIZE[type];
    if (size === undefined) throw new GGUFFormatError(`${what}: unknown value type ${type}`);
    const d = await this.dv(size);
    switch (type) {
      case ValueType.UINT8: return d.getUint8(0);
      case ValueType.INT8: return d.getInt8(0);
      case ValueType.UINT16: return d.getUint16(0, true);
      case ValueType.INT16: return d.getInt16(0, true);
      case ValueType.UINT32: return d.getUint32(0, true);
      case ValueType.INT32: return d.getInt32(0, true);
      case ValueType.FLOAT32: return d.getFloat32(0, true);
      case ValueType.UINT64: return d.getBigUint64(0, true);
      case ValueType.INT64: return d.getBigInt64(0, true);
      default: return d.getFloat64(0, true);
    }
  }

  /**
   * Parses items [i, count) for as long as their bytes are already buffered, consumes them, and
   * returns the index of the first item it could not take (i itself when none fit).
   */
  bufferedItems(type: ValueType, what: string, items: (Scalar | MetaValue)[], i: number, count: number): number {
    const b = this.src.buffered();
    let at = 0;
    if (type === ValueType.STRING) {
      for (; i < count && at + 8 <= b.length; i++) {
        const n = (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
        if ((b[at + 4] | b[at + 5] | b[at + 6] | b[at + 7]) !== 0 || n > LIMITS.stringBytes || at + 8 + n > b.length) break; // the slow path reports it
        let s = n <= 64 ? shortUtf8(b, at + 8, at + 8 + n) : undefined;
        if (s === undefined) {
          try {
            s = decoder.decode(b.subarray(at + 8, at + 8 + n));
          } catch {
            throw new GGUFFormatError(`${what}: string is not valid UTF-8`);
          }
        }
        items[i] = s;
        at += 8 + n;
      }
    } else {
      const size = SCALAR_SIZE[type];
      if (size === undefined || type === ValueType.BOOL) return i;
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      for (; i < count && at + size <= b.length; i++, at += size) {
        switch (type) {
          case ValueType.UINT8: items[i] = dv.getUint8(at); break;
          case ValueType.INT8: items[i] = dv.getInt8(at); break;
          case ValueType.UINT16: items[i] = dv.getUint16(at, true); break;
          case ValueType.INT16: items[i] = dv.getInt16(at, true); break;
          case ValueType.UINT32: items[i] = dv.getUint32(at, true); break;
          case ValueType.INT32: items[i] = dv.getInt32(at, true); break;
          case ValueType.FLOAT32: items[i] = dv.getFloat32(at, true); break;
          case ValueType.UINT64: items[i] = dv.getBigUint64(at, true); break;
          case ValueType.INT64: items[i] = dv.getBigInt64(at, true); break;
          default: items[i] = dv.getFloat64(at, true);
        }
      }
    }
    this.src.consume(at);
    return i;
  }

  /** Moves past an array value (after its type tag) with the same checks as reading it. */
  async skipArray(what: string, depth = 0): Promise<void> {
    if (depth > 2) throw new GGUFFormatError(`${what}: arrays nested too deeply`);
    const itemType = await this.u32();
    if (!(itemType in ValueType)) throw new GGUFFormatError(`${what}: unknown array element type ${itemType}`);
    const count = await this.u64(`item count of ${what}`, LIMITS.arrayItems);
    if (itemType === ValueType.ARRAY) {
      for (let i = 0; i < count; i++) await this.skipArray(`${what}[${i}]`, depth + 1);
    } else if (itemType === ValueType.STRING) {
      for (let i = 0; i < count; i++) {
        const b = this.src.buffered();
        let at = 0;
        // Walk the lengths that are already buffered; fall back to awaited reads at the edge.
        for (; i < count && at + 8 <= b.length; i++) {
          const n = (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
          if ((b[at + 4] | b[at + 5] | b[at + 6] | b[at + 7]) !== 0 || at + 8 + n > b.length) break;
          at += 8 + n;
        }
        this.src.consume(at);
        if (i < count) {
          const n = await this.u64(`length of ${what}`, LIMITS.stringBytes);
          if (n > this.left()) throw new GGUFFormatError(`${what}: string of ${n} bytes runs past the end of the file`);
          await this.src.skip(n);
        }
      }
    } else {
      const bytes = count * SCALAR_SIZE[itemType as ValueType]!;
      if (bytes > this.left()) throw new GGUFFormatError(`${what}: array of ${count} items runs past the end of the file`);
      await this.src.skip(bytes);
    }
  }

  async value(type: number, what: string, depth = 0): Promise<MetaValue> {
    if (type !== ValueType.ARRAY) {
      if (!(type in ValueType)) throw new GGUFFormatError(`${what}: unknown value type ${type}`);
      return { type, value: await this.scalar(type, what) } as MetaValue;
    }
    if (depth > 2) throw new GGUFFormatError(`${what}: arrays nested too deeply`);
    const itemType = await this.u32();
    if (!(itemType in ValueType)) throw new GGUFFormatError(`${what}: unknown array element type ${itemType}`);
    const count = await this.u64(`item count of ${what}`, LIMITS.arrayItems);
    const minItem = itemType === ValueType.STRING ? 8 : itemType === ValueType.ARRAY ? 12 : SCALAR_SIZE[itemType as ValueType]!;
    if (count * minItem > this.left()) throw new GGUFFormatError(`${what}: array of ${count} items runs past the end of the file`);
    const items: (Scalar | MetaValue)[] = new Array(count);
    if (itemType === ValueType.ARRAY) {
      for (let i = 0; i < count; i++) items[i] = await this.value(ValueType.ARRAY, `${what}[${i}]`, depth + 1);
    } else {
      // A tokenizer holds ~300k items: take what is buffered synchronously, await only to refill.
      for (let i = 0; i < count; ) {
        const next = this.bufferedItems(itemType, what, items, i, count);
        if (next > i) i = next;
        else items[i++] = await this.scalar(itemType, what);
      }
    }
    return { type: ValueType.ARRAY, itemType, value: items } as MetaValue;
  }
}

/**
 * UTF-8 → string for short byte runs (vocabulary tokens), faster than a TextDecoder call each.
 * Undefined for anything unusual (invalid, overlong, surrogates, 4-byte sequences): the caller
 * then decodes with the strict TextDecoder, which gives the same result or the error.
 */
function shortUtf8(b: Uint8Array, start: number, end: number): string | undefined {
  let out = "";
  for (let i = start; i < end; ) {
    const c = b[i];
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i += 1;
    } else if (c >= 0xc2 && c < 0xe0 && i + 1 < end && (b[i + 1] & 0xc0) === 0x80) {
      out += String.fromCharCode(((c & 0x1f) << 6) | (b[i + 1] & 0x3f));
      i += 2;
    } else if (c >= 0xe0 && c < 0xf0 && i + 2 < end && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
      const cp = ((c & 0x0f) << 12) | ((b[i + 1] & 0x3f) << 6) | (b[i + 2] & 0x3f);
      if (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000)) return undefined;
      out += String.fromCharCode(cp);
      i += 3;
    } else return undefined;
  }
  return out;
}

/** Parses magic, version, metadata and tensor infos; leaves the source at the data section. */
export async function parseHeader(src: ByteSource, opts: { skipArrays?: boolean } = {}): Promise<GGUFHeader> {
  const p = new HeaderParser(src);
  if (src.size !== undefined && src.size < 24) throw new GGUFFormatError(`not a GGUF file: only ${src.size} bytes`);
  const magic = await p.u32();
  if (magic !== GGUF_MAGIC) {
    throw new GGUFFormatError(`not a GGUF file: bad magic 0x${magic.toString(16).padStart(8, "0")} (expected "GGUF")`);
  }
  const version = await p.u32();
  if (version !== 2 && version !== 3) throw new GGUFFormatError(`unsupported GGUF version ${version} (supported: 2, 3)`);
  const tensorCount = await p.u64("tensor count", LIMITS.tensors);
  const kvCount = await p.u64("metadata count", LIMITS.kv);

  const metadata: Metadata = new Map();
  for (let i = 0; i < kvCount; i++) {
    const key = await p.string(`metadata key #${i}`);
    if (metadata.has(key)) throw new GGUFFormatError(`duplicate metadata key ${key}`);
    const type = await p.u32();
    // The engine needs no arrays (a tokenizer's 300k items): walked and checked, not decoded.
    if (opts.skipArrays && type === ValueType.ARRAY) await p.skipArray(`metadata ${key}`);
    else metadata.set(key, await p.value(type, `metadata ${key}`));
  }

  let alignment = DEFAULT_ALIGNMENT;
  const al = metadata.get("general.alignment");
  if (al !== undefined) {
    if (al.type !== ValueType.UINT32 || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
      throw new GGUFFormatError(`general.alignment must be a power-of-two u32, got ${String(al.value)}`);
    }
    alignment = al.value;
  }

  const tensors: TensorInfo[] = [];
  const tensorByName = new Map<string, TensorInfo>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await p.string(`tensor name #${i}`);
    if (tensorByName.has(name)) throw new GGUFFormatError(`duplicate tensor ${name}`);
    const nDims = await p.u32();
    if (nDims < 1 || nDims > LIMITS.dims) throw new GGUFFormatError(`tensor ${name}: ${nDims} dimensions (1..${LIMITS.dims} allowed)`);
    const dims: number[] = [];
    let count = 1;
    for (let d = 0; d < nDims; d++) {
      const n = await p.u64(`tensor ${name} dimension ${d}`, LIMITS.elements);
      if (n === 0) throw new GGUFFormatError(`tensor ${name}: dimension ${d} is 0`);
      dims.push(n);
      count *= n;
      if (count > LIMITS.elements) throw new GGUFFormatError(`tensor ${name}: ${dims.join("×")} elements is absurd`);
    }
    const type = await p.u32();
    const layout = storageLayout(type);
    if (!layout) throw new GGUFFormatError(`tensor ${name}: unknown tensor type ${type}`);
    if (dims[0] % layout.blockSize !== 0) {
      throw new GGUFFormatError(`tensor ${name}: row of ${dims[0]} is not a whole number of ${typeName(type)} blocks (${layout.blockSize})`);
    }
    const offset = await p.u64(`tensor ${name} offset`, Number.MAX_SAFE_INTEGER);
    if (offset % alignment !== 0) throw new GGUFFormatError(`tensor ${name}: offset ${offset} is not a multiple of the alignment ${alignment}`);
    const info: TensorInfo = { name, dims, type, offset, count, byteLength: tensorByteLength(type, dims) };
    tensors.push(info);
    tensorByName.set(name, info);
  }

  const dataOffset = Math.ceil(src.position / alignment) * alignment;
  let totalSize = dataOffset;
  for (const t of tensors) totalSize = Math.max(totalSize, dataOffset + t.offset + t.byteLength);
  if (src.size !== undefined) {
    for (const t of tensors) {
      const end = dataOffset + t.offset + t.byteLength;
      if (end > src.size) {
        throw new GGUFFormatError(`tensor ${t.name} (${t.byteLength} bytes at offset ${dataOffset + t.offset}) is out of bounds: the file is ${src.size} bytes`);
      }
    }
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (prev.offset + prev.byteLength > sorted[i].offset) throw new GGUFFormatError(`tensors ${prev.name} and ${sorted[i].name} overlap`);
  }
  return { version, metadata, tensors, tensorByName, alignment, dataOffset, totalSize };
}

/**
 * Reads a whole GGUF from a stream (an R2 object body) in one pass: the header,
 * then each tensor in file order into the buffer `place` returns for it (e.g. a
 * view of WASM memory). Tensors for which `place` returns undefined are skipped.
 *
 * With `verify`, the bytes are checked against the file's manifest as they pass:
 * the size before anything is parsed, the header before any tensor is placed, and
 * each tensor once it has arrived and before `place` is called again (the caller
 * finalizes, i.e. rewrites, a tensor only then). A mismatch throws an IntegrityError.
 */
export async function readGGUFStream(
  stream: ReadableStream<Uint8Array>,
  place: (info: TensorInfo, header: GGUFHeader) => Uint8Array | undefined | Promise<Uint8Array | undefined>,
  options: { size?: number; onProgress?: (bytesRead: number, total: number) => void; verify?: ManifestCheck } = {},
): Promise<GGUFHeader> {
  const check = options.verify;
  if (check && options.size !== undefined) check.size(options.size);
  const headerBytes = check ? new Uint8Array(check.manifest.header.bytes) : undefined;
  let captured = 0;
  const tap = headerBytes
    ? (chunk: Uint8Array) => {
        const n = Math.min(chunk.length, headerBytes.length - captured);
        if (n > 0) headerBytes.set(chunk.subarray(0, n), captured);
        captured += Math.max(0, n);
      }
    : undefined;
  const src = new StreamSource(stream, options.size, tap);
  const header = await parseHeader(src);
  await src.skip(header.dataOffset - src.position);
  if (check) {
    check.headerLength(header.dataOffset);
    await check.header(headerBytes!);
  }
  const order = [...header.tensors].sort((a, b) => a.offset - b.offset);
  for (const info of order) {
    await src.skip(header.dataOffset + info.offset - src.position);
    const dest = await place(info, header);
    if (dest === undefined) {
      // Unused by the caller, still part of the model the manifest vouches for: read aside to check it.
      if (check) await check.tensor(info.name, header.dataOffset + info.offset, await src.read(info.byteLength));
      else await src.skip(info.byteLength);
    } else {
      if (dest.length !== info.byteLength) throw new Error(`place(${info.name}) gave ${dest.length} bytes, the tensor has ${info.byteLength}`);
      await src.readInto(dest);
      if (check) await check.tensor(info.name, header.dataOffset + info.offset, dest);
    }
    options.onProgress?.(src.position, header.totalSize);
  }
  await src.cancel();
  return header;
}

/** Header and tensors of an in-memory GGUF (tests, small files). Tensors are views, not copies. */
export async function parseGGUFBuffer(bytes: Uint8Array): Promise<{ header: GGUFHeader; tensor(name: string): Uint8Array }> {
  const header = await parseHeader(new BufferSource(bytes));
  return {
    header,
    tensor(name) {
      const t = header.tensorByName.get(name);
      if (!t) throw new Error(`no tensor ${name}`);
      return bytes.subarray(header.dataOffset + t.offset, header.dataOffset + t.offset + t.byteLength);
    },
  };
}
