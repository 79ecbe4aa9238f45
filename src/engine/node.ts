/**
 * Node entry point of the wasm engine: the kernel builds compiled from build/,
 * and a GGUF file → WASM memory.
 *
 * The header is parsed without its arrays (the tokenizer's 300k items are
 * walked, not decoded: the forward pass never uses them). Tensors are read in
 * file order straight into their final place in WASM memory — positioned
 * reads of up to 8 MiB, a few in flight on libuv's thread pool, no JS-heap
 * copy — and each is repacked there on the main thread as soon as all of its
 * bytes have arrived, while the following reads proceed.
 *
 * With more than one thread (the default: one per core) the memory is shared
 * and the shared-memory builds are loaded; the extra threads are
 * worker_threads started while the file is read, each running the kernel
 * build over that memory (./thread-pool.ts, docs/engine.md "Threads").
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { Worker } from "node:worker_threads";
import { createHash } from "node:crypto";
import type { ManifestCheck } from "../gguf/manifest";
import { checkFileHeader, openModelFile } from "../gguf/node";
import { prepareEngine, type KernelChoice } from "./index";
import { loadKernels, parseBuildKind, PREFERENCE, type BuildKind, type KernelModules, type Kernels, type LoadKernelsOptions } from "./kernels";
import { parseHeader } from "../gguf/reader";
import { FileSource } from "../gguf/source";
import type { Placement } from "./load";
import type { ThreadOptions, WasmEngineOptions } from "./layout";
import { generation, threadLoopSource, ThreadPool } from "./thread-pool";
import type { WasmEngine } from "./wasm-engine";

// ------------------------------------------------------------------ kernel builds
// build/kernels-*.wasm are compiled here for what this runtime supports: the
// relaxed build needs `--experimental-wasm-relaxed-simd` in Node 20; without
// it compilation fails and that build is skipped.
export const DEFAULT_BUILD_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "build");

export interface CompiledKernels {
  modules: KernelModules;
  unavailable: Partial<Record<BuildKind, string>>;
}

/** The builds in `dir`; `shared`: the shared-memory ones (kernels-*-shared.wasm), for more than one thread. */
export function compileKernelModules(dir = DEFAULT_BUILD_DIR, shared = false): CompiledKernels {
  const modules: KernelModules = {};
  const unavailable: Partial<Record<BuildKind, string>> = {};
  for (const kind of PREFERENCE) {
    const file = `kernels-${kind}${shared ? "-shared" : ""}.wasm`;
    let bytes: ReturnType<typeof readFileSync>;
    try {
      bytes = readFileSync(join(dir, file));
    } catch (e) {
      unavailable[kind] = `cannot read ${file} (run npm run build): ${(e as Error).message}`;
      continue;
    }
    try {
      modules[kind] = new WebAssembly.Module(bytes);
    } catch (e) {
      const msg = (e as Error).message;
      unavailable[kind] = /relaxed/i.test(msg) ? `not supported by this runtime (${msg.split("\n")[0]})` : `compile error: ${msg}`;
    }
  }
  return { modules, unavailable };
}

/** The build EDGELM_KERNELS names (relaxed-fused, relaxed, simd, scalar; unset or "auto": the normal choice). */
export function kernelsFromEnv(): BuildKind | undefined {
  return parseBuildKind(process.env.EDGELM_KERNELS, "EDGELM_KERNELS");
}

/** Both relaxed builds need relaxed SIMD; without it (or with it turned off) they are left out, saying why. */
export function dropRelaxed(compiled: CompiledKernels, why: string): void {
  for (const kind of ["relaxed-fused", "relaxed"] as const) {
    delete compiled.modules[kind];
    compiled.unavailable[kind] = why;
  }
}

/** A shared memory gets the shared-memory builds. */
export function loadKernelsNode(
  opts: Omit<LoadKernelsOptions, "modules" | "unavailable"> & { dir?: string },
): Kernels {
  const { modules, unavailable } = compileKernelModules(opts.dir, opts.memory.buffer instanceof SharedArrayBuffer);
  return loadKernels({ ...opts, modules, unavailable });
}

/**
 * Turns on relaxed SIMD for wasm compiled from now on in this process
 * (Node 20 ships it behind `--experimental-wasm-relaxed-simd`; V8 reads the
 * flag at compile time, so setting it at run time works — checked on Node
 * 20.20). Safe to try: the relaxed build is still used only if its self-test
 * is bit-identical to scalar. Returns whether relaxed modules now compile.
 */
export function enableRelaxedSimd(): boolean {
  if (relaxedSupported()) return true;
  try {
    setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    return false;
  }
  return relaxedSupported();
}

// A function whose body is `v128.const 0; i16x8.relaxed_dot_i8x16_i7x16_s; drop` — compiles only with relaxed SIMD.
function relaxedSupported(): boolean {
  const bytes = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
    0x03, 0x02, 0x01, 0x00, // func 0: type 0
    0x0a, 0x2c, 0x01, 0x2a, 0x00, // code section (44 B): 1 body of 42 B, no locals
    0xfd, 0x0c, ...new Array(16).fill(0), // v128.const 0
    0xfd, 0x0c, ...new Array(16).fill(0), // v128.const 0
    0xfd, 0x92, 0x02, // i16x8.relaxed_dot_i8x16_i7x16_s (0x112)
    0x1a, 0x0b, // drop, end
  ]);
  try {
    new WebAssembly.Module(bytes);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ model files

export interface FileLoadOptions extends WasmEngineOptions, ThreadOptions, Pick<KernelChoice, "force" | "warmup"> {
  /** Try the relaxed-SIMD builds (turns on V8's flag at run time; default true unless EDGELM_RELAXED_SIMD=0). */
  relaxed?: boolean;
  /** Folder of the kernel builds (default build/). */
  buildDir?: string;
  onProgress?: (bytesRead: number, total: number) => void;
  /** Bytes per positioned read (default 8 MiB; tests use tiny pieces to exercise the piecewise repack). */
  readChunkBytes?: number;
  /** Check the file against its manifest as it is read (each tensor hashed before it is repacked). */
  verify?: ManifestCheck;
  // threads (ThreadOptions): default os.availableParallelism(); 1 runs everything on the calling thread.
}

/** Bytes per positioned read, and reads in flight (libuv's pool has 4 threads). */
const READ_CHUNK = 8 << 20;
const IN_FLIGHT = 3;

export async function loadWasmEngine(path: string, opts: FileLoadOptions = {}): Promise<WasmEngine> {
  let threads = opts.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${opts.threads}`);
  const force = opts.force ?? kernelsFromEnv();
  const wantRelaxed = opts.relaxed ?? process.env.EDGELM_RELAXED_SIMD !== "0";
  let relaxedNote: string | undefined;
  if (wantRelaxed && !enableRelaxedSimd()) relaxedNote = "this runtime cannot enable relaxed SIMD";
  let compiled = compileKernelModules(opts.buildDir, threads > 1);
  let threadNote: string | undefined;
  if (threads > 1 && !compiled.modules.scalar) {
    threadNote = `1 thread of ${threads} asked: no shared-memory scalar build (${compiled.unavailable.scalar})`;
    threads = 1;
    compiled = compileKernelModules(opts.buildDir);
  }
  const { modules, unavailable } = compiled;
  if (!wantRelaxed) dropRelaxed(compiled, opts.relaxed === false ? "disabled by the caller" : "disabled by EDGELM_RELAXED_SIMD=0");
  else if (relaxedNote) {
    for (const kind of ["relaxed-fused", "relaxed"] as const) if (!modules[kind]) unavailable[kind] = `${relaxedNote}: ${unavailable[kind] ?? ""}`;
  }

  const { handle, size } = await openModelFile(path);
  try {
    let header;
    try {
      header = await parseHeader(new FileSource(handle, size), { skipArrays: true });
    } catch (e) {
      throw Object.assign(e as Error, { message: `${path}: ${(e as Error).message}` });
    }
    const check = opts.verify;
    if (check) await checkFileHeader(path, size, header.dataOffset, check);
    const { engine, placements } = prepareEngine(header, { modules, unavailable, force, warmup: opts.warmup, shared: threads > 1 }, { ...opts, threads });
    if (threadNote) engine.noteThreads(threadNote);
    // The threads start (tens of ms each) while the file is read.
    const starting = threads > 1 ? startThreads(engine).then((pool) => ({ pool }), (error: Error) => ({ error })) : undefined;
    const order = [...placements.values()].sort((a, b) => a.info.offset - b.info.offset);
    try {
      const hashOf = check
        ? (p: Placement): TensorHash => {
            const { name, offset, byteLength } = p.info;
            const want = check.expect(name, header.dataOffset + offset, byteLength);
            const h = createHash("sha256");
            return { update: (b) => h.update(b), done: () => check.tensorHash(name, want, h.digest("hex")) };
          }
        : undefined;
      await readPipelined(
        order,
        header.dataOffset,
        opts.readChunkBytes ?? READ_CHUNK,
        (d, p) => handle.read(d, 0, d.length, p).then((r) => r.bytesRead),
        (p) => opts.onProgress?.(header.dataOffset + p.info.offset + p.info.byteLength, header.totalSize),
        hashOf,
      );
    } catch (e) {
      const started = await starting;
      if (started && "pool" in started) await started.pool.close();
      throw e;
    }
    const started = await starting;
    if (started && "pool" in started) engine.useThreads(started.pool);
    else if (started) engine.noteThreads(`1 thread of ${threads} asked: the threads did not start (${started.error.message})`);
    return engine;
  } finally {
    await handle.close();
  }
}

// ------------------------------------------------------------------ threads

// Each thread instantiates the engine's kernel build over the shared memory,
// points its scratch at its own region, says it is ready, and runs the job
// loop until the pool stops it. Plain JavaScript evaluated by Node, so that it
// needs no TypeScript loader in the thread; a dynamic import works whether
// Node evaluates it as CommonJS or as an ES module (NODE_OPTIONS may say).
const THREAD_MAIN = `
import("node:worker_threads").then(({ parentPort, workerData: d }) => {
  const { exports } = new WebAssembly.Instance(d.module, { env: { memory: d.memory } });
  exports.set_scratch(d.scratch);
  parentPort.postMessage("ready");
  (${threadLoopSource()})(exports, d.memory, d.control, d.index, d.threads, d.gen, d.tile, d.scores);
});
`;

/** Starts the engine's extra threads and resolves with their pool once all are ready. */
async function startThreads(engine: WasmEngine): Promise<ThreadPool> {
  const { count, control, scratch, tiles, scores } = engine.threadMemory;
  const { module, memory } = engine.kernels;
  const workers = Array.from({ length: count - 1 }, (_, j) => {
    const workerData = { module, memory, control, index: j + 1, threads: count, scratch: scratch[j], tile: tiles[j + 1], scores: scores[j + 1], gen: generation(memory, control) };
    // No execArgv: the thread needs none of the process's loaders (tsx) or flags; V8's flags are process-wide anyway.
    return new Worker(THREAD_MAIN, { eval: true, execArgv: [], name: `edgelm engine thread ${j + 1}`, workerData });
  });
  try {
    await Promise.all(
      workers.map(
        (w, j) =>
          new Promise<void>((resolve, reject) => {
            w.once("message", () => resolve());
            w.once("error", (e) => reject(new Error(`thread ${j + 1}: ${e.message}`)));
            w.once("exit", (code) => reject(new Error(`thread ${j + 1} exited (code ${code})`)));
          }),
      ),
    );
  } catch (e) {
    await Promise.allSettled(workers.map((w) => w.terminate()));
    throw e;
  }
  const handles = workers.map((w) => ({ terminate: () => w.terminate() }));
  const pool = new ThreadPool({ memory, control, exports: engine.kernels.exports, own: { tile: tiles[0], scores: scores[0] }, handles });
  workers.forEach((w, j) => {
    // Referenced until ready (the load awaits them); from now on a pool nobody closed must not keep the process alive.
    w.unref();
    w.removeAllListeners();
    w.on("error", (e) => pool.lost(j + 1, `failed: ${e.message}`));
    w.on("exit", (code) => pool.lost(j + 1, `exited (code ${code})`));
  });
  return pool;
}

/** A tensor's running hash: its bytes in order, then `done` checks the digest (throws on a mismatch). */
interface TensorHash {
  update(bytes: Uint8Array): void;
  done(): void;
}

/**
 * Reads every placement's bytes (READ_CHUNK pieces, IN_FLIGHT at a time, in
 * file order). A piece of a matrix that repacks in 4-row groups is repacked
 * as soon as it and the pieces before it have arrived (the next reads already
 * issued), right after `hashOf`'s hash has taken its bytes; any other tensor is
 * finalized once all its bytes are in and its hash is checked. `ready` is called
 * for each placement, in order, once it is complete.
 */
async function readPipelined(
  order: Placement[],
  dataOffset: number,
  chunk: number,
  read: (dest: Uint8Array, position: number) => Promise<number>,
  ready: (p: Placement) => void,
  hashOf?: (p: Placement) => TensorHash,
): Promise<void> {
  interface Piece { dest: Uint8Array; pos: number; tensor: number; start: number }
  const pieces: Piece[] = [];
  const remaining = new Int32Array(order.length);
  order.forEach((p, i) => {
    const dest = p.dest();
    const base = dataOffset + p.info.offset;
    // Pieces of whole 4-row groups where the tensor repacks piece by piece.
    const step = p.finalizePart && p.partBytes ? Math.max(1, Math.floor(chunk / p.partBytes)) * p.partBytes : chunk;
    for (let o = 0; o < dest.length; o += step) {
      pieces.push({ dest: dest.subarray(o, Math.min(dest.length, o + step)), pos: base + o, tensor: i, start: o });
      remaining[i]++;
    }
  });
  const hashes = hashOf ? order.map(hashOf) : undefined;
  // Reads finish out of order; a tensor's pieces are hashed and repacked in order (a hash needs its bytes in sequence).
  const taken = new Float64Array(order.length);
  const early = order.map(() => new Map<number, Piece>());
  const take = (piece: Piece) => {
    const t = piece.tensor;
    early[t].set(piece.start, piece);
    for (let q = early[t].get(taken[t]); q; q = early[t].get(taken[t])) {
      early[t].delete(q.start);
      hashes?.[t].update(q.dest);
      order[t].finalizePart?.(q.start, q.start + q.dest.length);
      taken[t] += q.dest.length;
      remaining[t]--;
    }
  };
  const waiters: (() => void)[] = new Array(order.length);
  let failure: unknown;
  let next = 0;
  let active = 0;
  let settle: (() => void) | undefined;
  const readPiece = async (piece: Piece) => {
    let done = 0;
    while (done < piece.dest.length) {
      const n = await read(piece.dest.subarray(done), piece.pos + done);
      if (n <= 0) throw new Error(`truncated file: ${piece.dest.length - done} bytes missing at offset ${piece.pos + done}`);
      done += n;
    }
  };
  const pump = () => {
    while (failure === undefined && active < IN_FLIGHT && next < pieces.length) {
      const piece = pieces[next++];
      active++;
      readPiece(piece).then(
        () => {
          active--;
          pump(); // the next read starts before this piece is repacked
          if (failure === undefined) {
            try {
              take(piece);
            } catch (e) {
              failure ??= e;
              waiters.forEach((w) => w?.());
            }
          }
          if (remaining[piece.tensor] === 0) waiters[piece.tensor]?.();
          if (active === 0) settle?.();
        },
        (e) => {
          active--;
          failure ??= e;
          waiters.forEach((w) => w?.());
          if (active === 0) settle?.();
        },
      );
    }
    if (active === 0) settle?.();
  };
  try {
    pump();
    for (let i = 0; i < order.length; i++) {
      if (remaining[i] > 0 && failure === undefined) await new Promise<void>((res) => (waiters[i] = res));
      if (failure !== undefined) throw failure;
      hashes?.[i].done();
      if (!order[i].finalizePart) order[i].finalize();
      ready(order[i]);
    }
  } finally {
    // Never leave reads running into memory the caller may drop.
    failure ??= new Error("load aborted");
    if (active > 0) await new Promise<void>((res) => (settle = res));
  }
}
