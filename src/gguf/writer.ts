/**
 * GGUF v3 writer. Tensor data may be given lazily so a converter holds one
 * tensor at a time; bytes go to a sink the host supplies (gguf/node.ts writes
 * files atomically through one).
 */
import { tensorByteLength, typeName } from "./quant";
import { DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, ValueType, type MetaValue, type Metadata, type Scalar, type TensorType } from "./types";

export interface TensorSpec {
  name: string;
  type: TensorType;
  /** ggml order: dims[0] is the row length. */
  dims: number[];
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
}

export interface GGUFSpec {
  metadata: Metadata;
  tensors: TensorSpec[];
  /** Defaults to general.alignment when present, else 32. */
  alignment?: number;
}

const encoder = new TextEncoder();

class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u8(v: number) { this.room(1); this.dv.setUint8(this.length, v); this.length += 1; }
  i8(v: number) { this.room(1); this.dv.setInt8(this.length, v); this.length += 1; }
  u16(v: number) { this.room(2); this.dv.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number) { this.room(2); this.dv.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number) { this.room(4); this.dv.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number) { this.room(4); this.dv.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number) { this.room(4); this.dv.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number) { this.room(8); this.dv.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint) { this.room(8); this.dv.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint) { this.room(8); this.dv.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array) { this.room(b.length); this.buf.set(b, this.length); this.length += b.length; }
  string(s: string) { const b = encoder.encode(s); this.u64(b.length); this.bytes(b); }
  pad(alignment: number) { const n = (alignment - (this.length % alignment)) % alignment; this.room(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  result(): Uint8Array { return this.buf.subarray(0, this.length); }
}

function writeScalar(w: ByteWriter, type: ValueType, v: Scalar, key: string): void {
  const bad = () => new Error(`metadata ${key}: ${JSON.stringify(typeof v === "bigint" ? String(v) : v)} is not a valid ${ValueType[type]}`);
  const int = (lo: number, hi: number) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) throw bad();
    return v;
  };
  switch (type) {
    case ValueType.UINT8: return w.u8(int(0, 0xff));
    case ValueType.INT8: return w.i8(int(-0x80, 0x7f));
    case ValueType.UINT16: return w.u16(int(0, 0xffff));
    case ValueType.INT16: return w.i16(int(-0x8000, 0x7fff));
    case ValueType.UINT32: return w.u32(int(0, 0xffffffff));
    case ValueType.INT32: return w.i32(int(-0x80000000, 0x7fffffff));
    case ValueType.FLOAT32: if (typeof v !== "number") throw bad(); return w.f32(v);
    case ValueType.FLOAT64: if (typeof v !== "number") throw bad(); return w.f64(v);
    case ValueType.BOOL: if (typeof v !== "boolean") throw bad(); return w.u8(v ? 1 : 0);
    case ValueType.STRING: if (typeof v !== "string") throw bad(); return w.string(v);
    case ValueType.UINT64: if (typeof v !== "bigint" && typeof v !== "number") throw bad(); return w.u64(v);
    case ValueType.INT64: if (typeof v !== "bigint" && typeof v !== "number") throw bad(); return w.i64(v);
    default: throw bad();
  }
}

function writeValue(w: ByteWriter, v: MetaValue, key: string): void {
  if (v.type !== ValueType.ARRAY) return writeScalar(w, v.type, v.value, key);
  w.u32(v.itemType);
  w.u64(v.value.length);
  for (const item of v.value) {
    if (v.itemType === ValueType.ARRAY) {
      const inner = item as MetaValue;
      writeValue(w, inner, key);
    } else {
      writeScalar(w, v.itemType, item as Scalar, key);
    }
  }
}

interface Layout {
  header: Uint8Array;
  alignment: number;
  offsets: number[];
  sizes: number[];
}

function layout(spec: GGUFSpec): Layout {
  const al = spec.metadata.get("general.alignment");
  const alignment = spec.alignment ?? (al?.type === ValueType.UINT32 ? al.value : DEFAULT_ALIGNMENT);
  if (alignment <= 0 || (alignment & (alignment - 1)) !== 0) throw new Error(`alignment must be a power of two, got ${alignment}`);
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(spec.tensors.length);
  w.u64(spec.metadata.size);
  for (const [key, value] of spec.metadata) {
    w.string(key);
    w.u32(value.type);
    writeValue(w, value, key);
  }
  const offsets: number[] = [];
  const sizes: number[] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of spec.tensors) {
    if (names.has(t.name)) throw new Error(`duplicate tensor ${t.name}`);
    names.add(t.name);
    const size = tensorByteLength(t.type, t.dims);
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offsets.push(offset);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  w.pad(alignment);
  return { header: w.result(), alignment, offsets, sizes };
}

async function tensorData(t: TensorSpec, size: number): Promise<Uint8Array> {
  const data = typeof t.data === "function" ? await t.data() : t.data;
  if (data.length !== size) {
    throw new Error(`tensor ${t.name}: ${typeName(t.type)} [${t.dims.join(", ")}] needs ${size} bytes, got ${data.length}`);
  }
  return data;
}

/** The whole file in memory (tests, small models). */
export async function encodeGGUF(spec: GGUFSpec): Promise<Uint8Array> {
  const { header, alignment, offsets, sizes } = layout(spec);
  const last = spec.tensors.length - 1;
  const total = header.length + (last < 0 ? 0 : offsets[last] + Math.ceil(sizes[last] / alignment) * alignment);
  const out = new Uint8Array(total);
  out.set(header);
  for (let i = 0; i < spec.tensors.length; i++) {
    out.set(await tensorData(spec.tensors[i], sizes[i]), header.length + offsets[i]);
  }
  return out;
}

/** Appends bytes; resolves to the total written so far. */
export type ByteSink = (bytes: Uint8Array) => Promise<number>;

export type TensorProgress = (index: number, total: number, name: string, bytesWritten: number) => void;

/** Streams a GGUF into `put` tensor by tensor; `onTensor` reports progress. */
export async function writeGGUF(spec: GGUFSpec, put: ByteSink, onTensor?: TensorProgress): Promise<void> {
  const { header, alignment, sizes } = layout(spec);
  await put(header);
  for (let i = 0; i < spec.tensors.length; i++) {
    const data = await tensorData(spec.tensors[i], sizes[i]);
    let pos = await put(data);
    const pad = (alignment - (data.length % alignment)) % alignment;
    if (pad) pos = await put(new Uint8Array(pad));
    onTensor?.(i + 1, spec.tensors.length, spec.tensors[i].name, pos);
  }
}
