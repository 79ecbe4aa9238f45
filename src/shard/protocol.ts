/**
 * The coordinator ↔ shard wire format, the same whether a frame travels as one RPC argument or
 * inside a long-lived byte stream (one stream pair per shard per request):
 *
 *   [u32 frame bytes][u32 json bytes][json, zero-padded to 4][f32 payload]     little-endian
 *
 * The JSON head names the operation; the payload is hidden states [n × H] (or logits
 * [n × rows]). Binary floats: JSON would cost ~3× the bytes and a parse per value per hop.
 * Frames are self-delimiting so a byte stream may split or merge them freely.
 */

export type ShardRequest =
  /** Layer shard: run its layers over hidden [n × H] (payload) at positions pos..pos+n−1 of `seq`. */
  | { op: "run"; seq: string; pos: number; n: number }
  /** Head shard: final LayerNorm + its vocabulary slice for hidden [n × H] → logits [n × rows]. */
  | { op: "logits"; n: number }
  | { op: "truncate"; seq: string; n: number }
  | { op: "drop"; seq: string }
  | { op: "info" };

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
  | { ok: true; n?: number; info?: ShardInfo }
  /** `unknown`: this shard does not hold `seq` up to `pos` (isolate recycled, LRU-evicted): re-run the prefix. */
  | { ok: false; unknown: true; have: number }
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
  const head = JSON.parse(dec.decode(frame.subarray(8, 8 + jsonLen))) as H;
  // A copy when the frame is not 4-byte aligned in its buffer (RPC may hand over any view).
  const bytes = frame.subarray(start);
  const payload = (frame.byteOffset + start) % 4 === 0 ? new Float32Array(frame.buffer, frame.byteOffset + start, bytes.length / 4) : new Float32Array(bytes.slice().buffer);
  return { head, payload };
}

/** Reads whole frames from a byte stream, however its chunks are cut. */
export class FrameReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private buf = new Uint8Array(0);

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  /** The next frame, or undefined when the stream ended cleanly between frames. */
  async next(): Promise<Uint8Array | undefined> {
    for (;;) {
      if (this.buf.length >= 4) {
        const size = new DataView(this.buf.buffer, this.buf.byteOffset, 4).getUint32(0, true);
        if (size < 8) throw new Error(`bad shard frame size ${size}`);
        if (this.buf.length >= size) {
          const frame = this.buf.slice(0, size); // own buffer, aligned
          this.buf = this.buf.subarray(size);
          return frame;
        }
      }
      const { done, value } = await this.reader.read();
      if (done) {
        if (this.buf.length) throw new Error(`shard stream ended inside a frame (${this.buf.length} bytes pending)`);
        return undefined;
      }
      const joined = new Uint8Array(this.buf.length + value.length);
      joined.set(this.buf);
      joined.set(value, this.buf.length);
      this.buf = joined;
    }
  }

  cancel(reason?: unknown): Promise<void> {
    return this.reader.cancel(reason).catch(() => {});
  }
}
