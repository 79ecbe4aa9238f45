/**
 * V8 flags for the workerd that Miniflare starts. Miniflare 4.20260426 builds workerd's binary
 * Cap'n Proto config itself and has no option for the config's `v8Flags` field, so this sets the
 * field in the encoded config on its way to the process.
 *
 * Why (docs/sharding.md, "Local workerd livelock"): on a machine with 2 cores V8 runs ONE
 * background worker thread for all isolates of the process. A sharded deployment is 7+ isolates
 * compiling and allocating at once; when that thread parks in a background compile waiting for
 * its isolate's GC, and the main thread meanwhile drains another isolate's foreground tasks
 * (workerd pumps V8's task queue until it is empty after every JS continuation), cppgc's
 * incremental sweep task re-posts itself forever waiting for a concurrent sweep job that can
 * never get the thread: workerd spins at 100% CPU and never answers again.
 * `--single-threaded-gc` makes cppgc sweep on the main thread only, which breaks the cycle.
 */
import { Runtime } from "miniflare";

const WORD = 8;

/**
 * `config` (an unpacked Cap'n Proto message whose root is workerd's `Config`) with its `v8Flags`
 * (pointer 2 of the root struct) set to `flags`. The list goes into a new last segment, reached
 * by a far pointer, so nothing already encoded moves.
 */
export function withV8Flags(config: Uint8Array, flags: readonly string[]): Uint8Array {
  const view = new DataView(config.buffer, config.byteOffset, config.byteLength);
  const segments = view.getUint32(0, true) + 1;
  const tableBytes = (4 * (1 + segments) + 7) & ~7;
  const sizes = Array.from({ length: segments }, (_, i) => view.getUint32(4 + 4 * i, true));
  const total = tableBytes + sizes.reduce((a, s) => a + s * WORD, 0);
  if (total !== config.byteLength) throw new Error(`not an unpacked Cap'n Proto message (${config.byteLength} bytes, the segment table says ${total})`);

  // The root pointer: segment 0, word 0, a struct pointer to workerd's Config.
  const seg0 = tableBytes;
  const lo = view.getUint32(seg0, true);
  const hi = view.getUint32(seg0 + 4, true);
  if ((lo & 3) !== 0) throw new Error("the config's root is not a struct pointer in segment 0");
  const start = 1 + (lo >> 2); // words from segment 0's start
  const dataWords = hi & 0xffff;
  const pointers = hi >>> 16;
  if (pointers < 3) throw new Error(`the config's root struct has ${pointers} pointers; v8Flags is pointer 2`);
  const slot = seg0 + (start + dataWords + 2) * WORD;
  if (view.getUint32(slot, true) !== 0 || view.getUint32(slot + 4, true) !== 0) throw new Error("the config already sets v8Flags");

  // New segment: [landing pad: list of n pointers][n text pointers][the texts, NUL-terminated, word-padded].
  const texts = flags.map((f) => new TextEncoder().encode(f));
  const textWords = texts.map((t) => Math.ceil((t.length + 1) / WORD));
  const segWords = 1 + texts.length + textWords.reduce((a, w) => a + w, 0);
  const seg = new Uint8Array(segWords * WORD);
  const sv = new DataView(seg.buffer);
  // List pointer (kind 1) to the next word (offset 0), element size 6 (pointer), n elements.
  sv.setUint32(0, 1, true);
  sv.setUint32(4, 6 | (texts.length << 3), true);
  let at = 1 + texts.length;
  texts.forEach((t, i) => {
    const ptr = (1 + i) * WORD;
    // List pointer to byte elements (size 2), offset from the end of this pointer.
    sv.setUint32(ptr, 1 | ((at - (1 + i) - 1) << 2), true);
    sv.setUint32(ptr + 4, 2 | ((t.length + 1) << 3), true);
    seg.set(t, at * WORD);
    at += textWords[i];
  });

  const newTableBytes = (4 * (1 + segments + 1) + 7) & ~7;
  const out = new Uint8Array(newTableBytes + (total - tableBytes) + seg.length);
  const ov = new DataView(out.buffer);
  ov.setUint32(0, segments, true);
  sizes.forEach((s, i) => ov.setUint32(4 + 4 * i, s, true));
  ov.setUint32(4 + 4 * segments, segWords, true);
  out.set(config.subarray(tableBytes), newTableBytes);
  out.set(seg, newTableBytes + (total - tableBytes));
  // The slot becomes a single far pointer (kind 2) to word 0 of the new segment.
  const moved = slot - tableBytes + newTableBytes;
  ov.setUint32(moved, 2, true);
  ov.setUint32(moved + 4, segments, true);
  return out;
}

type UpdateConfig = (config: Uint8Array, ...rest: unknown[]) => unknown;
let installed: string | undefined;

/**
 * Every workerd that Miniflare starts from now on in this process gets `flags`. Miniflare's
 * runtime is private to each instance, so the hook is on the shared class, once per process.
 */
export function useWorkerdV8Flags(flags: readonly string[]): void {
  const key = flags.join(" ");
  if (installed !== undefined) {
    if (installed !== key) throw new Error(`workerd V8 flags are already "${installed}" in this process`);
    return;
  }
  installed = key;
  if (flags.length === 0) return;
  const proto = Runtime.prototype as unknown as { updateConfig: UpdateConfig };
  const original = proto.updateConfig;
  proto.updateConfig = function (this: unknown, config: Uint8Array, ...rest: unknown[]) {
    return original.call(this, withV8Flags(config, flags), ...rest);
  };
}

/**
 * The flags this repository runs local workerd with (see the file comment). EDGELM_WORKERD_V8_FLAGS
 * (space-separated; empty for none) replaces them, e.g. to reproduce the livelock.
 */
export function localWorkerdV8Flags(): string[] {
  const env = process.env.EDGELM_WORKERD_V8_FLAGS;
  return env === undefined ? ["--single-threaded-gc"] : env.split(/\s+/).filter(Boolean);
}
