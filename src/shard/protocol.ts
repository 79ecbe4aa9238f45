/**
 * The coordinator ↔ shard wire format, the same whether a frame travels as one RPC argument or
 * inside a long-lived byte stream (one stream pair per shard per request):
 *
 *   [u32 frame bytes][u32 json bytes][json, zero-padded to 4][f32 payload]     little-endian
 *
 * The JSON head names the operation; the payload is hidden states [n × H] (or logits
 * [n × rows]). A `run` frame carries a batched step: the rows of several sequences, each named
 * with its positions in `parts`, so the shard reads its weights once for all of them. Binary floats: JSON would cost ~3× the bytes and a parse per value per hop.
 * Frames are self-delimiting so a byte stream may split or merge them freely.
 */

/** One sequence's rows in a batched `run` frame: positions pos..pos+n−1 of `seq`. */
export interface RunPart {
  seq: string;
  pos: number;
  n: number;
}

export type ShardRequest =
  /**
   * Layer shard: run its layers once over the rows of every part (payload: the parts' hidden
   * states one after the other, [Σn × H]), each part at its own sequence's positions.
   */
  | { op: "run"; parts: RunPart[] }
  /** Head shard: final LayerNorm + its vocabulary slice for hidden [n × H] → logits [n × rows] (rows of any sequences). */
  | { op: "logits"; n: number }
  | { op: "truncate"; seq: string; n: number }
  | { op: "drop"; seq: string }
  | { op: "info" };

/**
 * A `run` reply's word on each part, in the request's order. The reply's payload holds the rows of
 * the parts that ran, in order; a part the shard does not hold up to `pos` (isolate recycled,
 * LRU-evicted) is `unknown` and has no rows there: the coordinator re-runs that sequence's prefix,
 * and the other parts go on.
 */
export type PartReply = { seq: string; ok: true } | { seq: string; ok: false; unknown: true; have: number };

export interface ShardInfo {
  index: number;
  kind: "layers" | "head";
  script: string;
  kernels: string;
  /** WASM memory now, its planned hard maximum, and bytes the allocator handed out (peak: nothing is freed). */
  memoryBytes: number;
  maxBytes: number;
  allocatedBytes: number;
  loadMs: number;
  sequences: string[];
}

export type ShardReply =
  | { ok: true; n?: number; parts?: PartReply[]; info?: ShardInfo }
  /** `load`: the shard could not load its part (and how many loads this instance has made): the coordinator's /health shows it. */
  | { ok: false; error: string; load?: { attempts: number } };

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeFrame(head: object, payload?: Float32Array): Uint8Array {
  const json = enc.encode(JSON.stringify(head));
  const jsonPadded = Math.ceil(json.length / 4) * 4;
  const payloadBytes = payload ? payload.length * 4 : 0;
  const frame = new Uint8Array(8 + jsonPadded + payloadBytes);
  const dv = new DataView(frame.buffer);
  dv.setUint32(0, frame.length, true);
  dv.setUint32(4, json.length, true);
  frame.set(json, 8);
  if (payload) frame.set(new Uint8Array(payload.buffer, payload.byteOffset, payloadBytes), 8 + jsonPadded);
  return frame;
}

export function decodeFrame<H>(frame: Uint8Array): { head: H; payload: Float32Array } {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (frame.length < 8 || dv.getUint32(0, true) !== frame.length) throw new Error(`bad shard frame: ${frame.length} bytes, header says ${frame.length >= 4 ? dv.getUint32(0, true) : "?"}`);
  const jsonLen = dv.getUint32(4, true);
  const start = 8 + Math.ceil(jsonLen / 4) * 4;
  if (start > frame.length) throw new Error(`bad shard frame: a ${jsonLen}-byte head does not fit in ${frame.length} bytes`);
  if ((frame.length - start) % 4 !== 0) throw new Error(`bad shard frame: ${frame.length - start} payload bytes are not whole f32 values`);
  let head: H;
  try {
    head = JSON.parse(dec.decode(frame.subarray(8, 8 + jsonLen))) as H;
  } catch (e) {
    throw new Error(`bad shard frame: its head is not JSON (${(e as Error).message})`);
  }
  if (typeof head !== "object" || head === null) throw new Error("bad shard frame: its head is not an object");
  // A copy when the frame is not 4-byte aligned in its buffer (RPC may hand over any view).
  const bytes = frame.subarray(start);
  const payload = (frame.byteOffset + start) % 4 === 0 ? new Float32Array(frame.buffer, frame.byteOffset + start, bytes.length / 4) : new Float32Array(bytes.slice().buffer);
  return { head, payload };
}

/**
 * A `run` frame's parts, checked against its payload of `values` f32 for width `H`: a non-empty list of
 * distinct sequences, each with whole positions, whose rows add up to the payload. Returns each
 * part with the offset (in values) of its rows in the payload.
 */
export function runParts(parts: unknown, values: number, H: number): (RunPart & { offset: number })[] {
  if (!Array.isArray(parts) || parts.length === 0) throw new Error("run: parts must be a non-empty list of {seq, pos, n}");
  const seen = new Set<string>();
  let offset = 0;
  const out = parts.map((p: Partial<RunPart> | null, i) => {
    const { seq, pos, n } = p ?? {};
    if (typeof seq !== "string" || seq === "") throw new Error(`run: part ${i} has no sequence id`);
    if (seen.has(seq)) throw new Error(`run: sequence ${seq} appears twice in one frame`);
    seen.add(seq);
    if (!Number.isInteger(pos) || pos! < 0) throw new Error(`run: part ${i} (${seq}): pos must be an integer ≥ 0, got ${JSON.stringify(pos)}`);
    if (!Number.isInteger(n) || n! < 1) throw new Error(`run: part ${i} (${seq}): n must be an integer ≥ 1, got ${JSON.stringify(n)}`);
    const part = { seq, pos: pos!, n: n!, offset };
    offset += n! * H;
    return part;
  });
  if (offset !== values) throw new Error(`run: ${values} values for ${offset / H} positions of ${H}`);
  return out;
}

/**
 * Reads whole frames from a byte stream, however its chunks are cut.
 *
 * Where the stream is a byte stream (workerd's pipes and RPC streams), frames are read with a BYOB
 * reader straight into a buffer of the frame's own size: a default reader gets workerd's pipes in
 * chunks of ~4 KiB, so a batched step's logits reply (hundreds of KiB) came as ~50 reads per row,
 * each an await across the isolates. Other streams (Node's, in tests) are read chunk by chunk; a
 * frame's chunks are kept as they come and copied once, when it is whole (joining each chunk onto
 * what came before copied it again and again: quadratic in the rows of the step).
 */
export class FrameReader {
  private readonly byob?: ReadableStreamBYOBReader;
  private readonly reader?: ReadableStreamDefaultReader<Uint8Array>;
  private readonly chunks: Uint8Array[] = [];
  private have = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    try {
      this.byob = stream.getReader({ mode: "byob" });
    } catch {
      this.reader = stream.getReader();
    }
  }

  /** The next frame, or undefined when the stream ended cleanly between frames. */
  async next(): Promise<Uint8Array | undefined> {
    if (this.byob) return this.nextWhole(this.byob);
    for (;;) {
      if (this.have >= 4) {
        if (this.chunks[0].length < 4) {
          const all = this.take(this.have);
          this.chunks.unshift(all);
          this.have = all.length;
        }
        const size = frameSize(this.chunks[0]);
        if (this.have >= size) return this.take(size);
      }
      const { done, value } = await this.reader!.read();
      if (done) {
        if (this.have) throw cutShort(this.have);
        return undefined;
      }
      if (value.length === 0) continue;
      this.chunks.push(value);
      this.have += value.length;
    }
  }

  /** A frame read with a BYOB reader: its size word, then the rest into a buffer of its size. */
  private async nextWhole(r: ReadableStreamBYOBReader): Promise<Uint8Array | undefined> {
    const word = await fill(r, new ArrayBuffer(4), 0);
    if (word.got === 0) return undefined;
    if (word.got < 4) throw cutShort(word.got);
    const size = frameSize(new Uint8Array(word.buf));
    const frame = new Uint8Array(size);
    frame.set(new Uint8Array(word.buf));
    const rest = await fill(r, frame.buffer, 4);
    if (rest.got < size) throw cutShort(rest.got);
    return new Uint8Array(rest.buf);
  }

  /** The first `n` bytes pending, in a buffer of their own (aligned), taken off the chunks. */
  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let at = 0; at < n; ) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.have -= n;
    return out;
  }

  cancel(reason?: unknown): Promise<void> {
    return (this.byob ?? this.reader!).cancel(reason).catch(() => {});
  }
}

/** The size word at the start of `bytes` (at least 4 of them), checked. */
function frameSize(bytes: Uint8Array): number {
  const size = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  if (size < 8) throw new Error(`bad shard frame size ${size}`);
  return size;
}

const cutShort = (pending: number) => new Error(`shard stream ended inside a frame (${pending} bytes pending)`);

/**
 * Reads into buf from byte `at` until it is full or the stream ends. A BYOB read hands the buffer
 * over and back (the old ArrayBuffer is detached), hence the buffer returned with the bytes it holds.
 */
async function fill(r: ReadableStreamBYOBReader, buf: ArrayBuffer, at: number): Promise<{ buf: ArrayBuffer; got: number }> {
  while (at < buf.byteLength) {
    const { done, value } = await r.read(new Uint8Array(buf, at, buf.byteLength - at));
    if (value) buf = value.buffer;
    if (done || !value) break;
    at += value.byteLength;
  }
  return { buf, got: at };
}
