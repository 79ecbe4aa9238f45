/**
 * The main thread's side of a multi-threaded engine, and the loop each extra
 * thread runs. Host-neutral (SharedArrayBuffer and Atomics only): starting
 * the threads is the host's job (src/engine/node.ts, with Node's
 * worker_threads). workerd has no threads, so the Worker never builds a pool.
 *
 * Each extra thread has its own instance of the kernel module over the one
 * shared memory. A job is a list of chunks — each a few kernel calls that
 * compute some rows of a product (./row-split.ts), or some positions' or
 * heads' share of the work between products (./position-split.ts) — that
 * the main thread writes into a control block in that memory; every thread,
 * the main one included, claims chunks one at a time until none is left, and
 * the job is over when every chunk is done. Claiming (not a fixed share per thread)
 * keeps a job from waiting on a thread the OS has not scheduled: on a busy
 * machine the others take its chunks, so N threads never do much worse than
 * one.
 *
 * Why not postMessage: a decode step runs ~100 products of a few hundred µs
 * each; a message costs tens of µs and an event-loop turn on both sides (and
 * the main thread's loop is blocked inside forward() anyway). A handover
 * through a few words of shared memory costs a few µs while the threads spin,
 * and a futex wake once they sleep.
 *
 * Control block (Int32 words from `control`; the first four each alone on a cache line):
 *   GEN        bumped (and notified) by the main thread when a job starts: wakes the threads
 *   CLAIM      total << 16 | next: the job's chunk count and the next unclaimed chunk. A
 *              successful compare-exchange from (total, i), i < total, to (total, i + 1) hands
 *              out chunk i of the job in progress, whoever does it and whenever it read the
 *              word: the chunks are rewritten only after all of them are done
 *   DONE       chunks finished; the thread that finishes the last one notifies
 *   FAILED     0, or 1 + the index of the first thread whose calls threw
 *   STOP       nonzero: the threads return from their loop
 *   HOOK       the test hook: the index of the thread to fail at its next job, until it has
 *   MSG_LEN, MSG  the failing thread's error message (UTF-8, up to MSG_BYTES)
 *   CHUNKS     per chunk its first call and call count
 *   CALLS      per call an index into OPS, a word saying which arguments are offsets into the
 *              running thread's own regions (2 bits each: 0 none, 1 its tile, 2 its scores
 *              buffer), and the arguments, as OPS types them
 *   BUSY + i   1 while thread i runs a chunk (names the late ones on a timeout)
 *   RAN + i    chunks thread i has run (after BUSY's words; RAN = BUSY + threads)
 */
import type { KernelExports } from "./kernels";

/**
 * What a thread can be asked to run — a row-block copy or a kernel export —
 * and its arguments, one letter each: u (u32: pointers, counts) or f (f32:
 * LayerNorm's eps, rotary's base). `copy` moves `count` rows of `bytes` from
 * src (rows srcStride apart) to dst (rows dstStride apart): args [src, dst,
 * bytes, count, srcStride, dstStride].
 */
export const OPS = {
  copy: "uuuuuu",
  matvec_q4r_q8a: "uuuuu",
  matmul_q4r_q8b: "uuuuuu",
  matvec_q8r_q8a: "uuuuu",
  matmul_q8r_q8b: "uuuuuu",
  matvec_q6r_q8a: "uuuuu",
  matmul_q6r_q8b: "uuuuuu",
  matvec_q4kr_q8a: "uuuuu",
  matmul_q4kr_q8b: "uuuuuu",
  matvec_q5kr_q8a: "uuuuu",
  matmul_q5kr_q8b: "uuuuuu",
  matvec_q2kr_q8a: "uuuuu",
  matmul_q2kr_q8b: "uuuuuu",
  matvec_q3kr_q8a: "uuuuu",
  matmul_q3kr_q8b: "uuuuuu",
  matvec_q41r_q8a: "uuuuu",
  matmul_q41r_q8b: "uuuuuu",
  matvec_q50r_q8a: "uuuuu",
  matmul_q50r_q8b: "uuuuuu",
  matvec_q51r_q8a: "uuuuu",
  matmul_q51r_q8b: "uuuuuu",
  matvec_f32: "uuuuu",
  matvec_f16: "uuuuu",
  matvec_bf16: "uuuuu",
  quantize_q8a: "uuu",
  quantize_q8b: "uuuu",
  quantize_q8a_k: "uuu",
  quantize_q8b_k: "uuuu",
  layernorm: "uuuuuuf",
  rope_neox: "uuuuuuuf",
  store_kv_f16: "uuuuuuu",
  attention_f16kv_causal: "uuuuuuuuuuuuuu",
  silu_mul: "uuuu",
  add_f32: "uuuu",
} as const;
export type Op = keyof typeof OPS;
const OP_NAMES = Object.keys(OPS) as Op[];

/** A place in the running thread's own region: whichever thread runs the call, its own. */
export interface Own {
  region: "tile" | "scores";
  offset: number;
}
export type Arg = number | Own;

/** One call: its arguments as OPS types them (a u32 may be a place in the thread's own regions). */
export interface Call {
  op: Op;
  args: Arg[];
}

/** Calls run together, in order, by whichever thread claims them. */
export type Chunk = Call[];

/** The start of the running thread's tile, a place in it, and its scores buffer. */
export const TILE: Own = { region: "tile", offset: 0 };
export const inTile = (offset: number): Own => ({ region: "tile", offset });
export const SCORES: Own = { region: "scores", offset: 0 };
const OWN_CODE = { tile: 1, scores: 2 } as const;

/** A thread's own regions. */
export interface OwnRegions {
  /** [C × share] f32 (its rows of a product) or its positions' Q8B (./layout.ts); absent with one thread. */
  tile?: number;
  /** [numHeads × ctx] f32: attention scores, a row per query head of a call. */
  scores: number;
}

/** Runs `chunk`'s calls here, in order (the main thread's share of a job, or a job too small to hand out). */
export function runChunk(k: KernelExports, memory: WebAssembly.Memory, chunk: Chunk, own: OwnRegions): void {
  for (const { op, args } of chunk) {
    checkArity(op, args);
    // Most calls name no region of the thread's own: those pass their arguments as they are, with no copy per call.
    const a = args.every((x) => typeof x === "number") ? (args as number[]) : args.map((x) => (typeof x === "number" ? x : ownBase(own, x.region) + x.offset));
    if (op === "copy") {
      const [src, dst, bytes, count, ss, ds] = a;
      const u8 = new Uint8Array(memory.buffer);
      for (let r = 0; r < count; r++) u8.copyWithin(dst + r * ds, src + r * ss, src + r * ss + bytes);
    } else {
      (k[op] as (...x: number[]) => void)(...a);
    }
  }
}

function checkArity(op: Op, args: readonly Arg[]): void {
  if (args.length !== OPS[op].length) throw new RangeError(`${op} takes ${OPS[op].length} arguments, got ${args.length}`);
}

function ownBase(own: OwnRegions, region: Own["region"]): number {
  const base = own[region];
  if (base === undefined) throw new Error(`a call asks for the thread's ${region}, and this thread has none`);
  return base;
}

const GEN = 0;
const CLAIM = 16;
const DONE = 32;
const FAILED = 48;
const STOP = 49;
const HOOK = 50;
const MSG_LEN = 51;
const MSG = 64;
const MSG_BYTES = 1024;
/** Per job; more chunks run as several jobs. 16 bits each in CLAIM. */
const MAX_CHUNKS = 1024;
/** Per job; more run as several jobs. A product's chunk is two calls, a share of positions a few per position (./position-split.ts). */
const MAX_CALLS = 2048;
/** The op, which arguments are in the thread's own regions, and the most arguments any op has. */
const CALL_WORDS = 2 + Math.max(...Object.values(OPS).map((sig) => sig.length));
const CHUNKS = MSG + MSG_BYTES / 4;
const CALLS = CHUNKS + 2 * MAX_CHUNKS;
const BUSY = CALLS + MAX_CALLS * CALL_WORDS;

/** Bytes of the control block for `threads` threads. */
export function controlBytes(threads: number): number {
  return (BUSY + 2 * threads) * 4;
}

/** The current job generation (a thread started now waits for the next). */
export function generation(memory: WebAssembly.Memory, control: number): number {
  return Atomics.load(new Int32Array(memory.buffer, control, 1), GEN);
}

/**
 * How long an idle thread spins for the next job before it sleeps, and the
 * main thread for the last chunks: the short gaps inside a step (a norm, a
 * quantize) stay a memory write; after longer ones (attention, between
 * tokens) a futex wake costs ~20 µs on the shared 2-core VM. Spinning longer
 * gained nothing measurable there when the machine was quiet, and on a busy
 * machine a spinner takes the time of the thread it waits for.
 */
const SPIN_MS = 0.1;
/**
 * A thread that found nothing left to claim in this many jobs in a row is
 * not getting a core in time (the machine is busy): waking it for every job
 * (a futex wake, and a context switch that may well preempt the thread
 * doing the work) only costs, so it then naps NAP_MS at a time and joins
 * whatever job is running when it wakes.
 */
const MISSED_JOBS = 4;
const NAP_MS = 2;
/** A job far longer than any product means a thread is gone. */
const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * JavaScript source of `(exports, memory, control, index, threads, gen0, tile, scores) => void`:
 * the loop an extra thread runs until STOP. `gen0` is the generation when the
 * thread was started: the main thread may start a job before the thread
 * reaches its loop, so the thread must not read its starting point later. A
 * string, not a function, because the thread runs it without our TypeScript
 * loader (Node evaluates the worker's code as plain JavaScript); the
 * constants above are spliced in.
 */
export function threadLoopSource(): string {
  return `(k, memory, control, index, threads, gen0, tile, scores) => {
  const ops = ${JSON.stringify(Object.entries(OPS))};
  const w = new Int32Array(memory.buffer, control, ${BUSY} + 2 * threads);
  const f = new Float32Array(memory.buffer, control, ${BUSY} + 2 * threads);
  const bases = [0, tile, scores];
  const fail = (e) => {
    if (Atomics.compareExchange(w, ${FAILED}, 0, index + 1) !== 0) return;
    const text = new TextEncoder().encode(String(e)).subarray(0, ${MSG_BYTES});
    new Uint8Array(memory.buffer, control + ${MSG * 4}, ${MSG_BYTES}).set(text);
    Atomics.store(w, ${MSG_LEN}, text.length);
  };
  const run = (chunk) => {
    const u8 = new Uint8Array(memory.buffer);
    for (let j = 0, first = w[${CHUNKS} + 2 * chunk], n = w[${CHUNKS} + 2 * chunk + 1]; j < n; j++) {
      const p = ${CALLS} + (first + j) * ${CALL_WORDS};
      const [op, sig] = ops[w[p]];
      const own = w[p + 1];
      const a = [];
      for (let i = 0; i < sig.length; i++) {
        a.push(sig[i] === "f" ? f[p + 2 + i] : bases[(own >>> (2 * i)) & 3] + (w[p + 2 + i] >>> 0));
      }
      if (op === "copy") for (let r = 0; r < a[3]; r++) u8.copyWithin(a[1] + r * a[5], a[0] + r * a[4], a[0] + r * a[4] + a[2]);
      else k[op](...a);
    }
  };
  let seen = gen0;
  // Spin for the next job only after one this thread took part in: one it came too late for
  // means it does not have a core of its own, and spinning would take the time of those that work.
  // After several such jobs in a row it stops being woken for each job and looks in now and then.
  let claimed = 0;
  let missed = 0;
  for (;;) {
    let gen;
    for (let n = 1, t0 = performance.now(); (gen = Atomics.load(w, ${GEN})) === seen; n++) {
      if (claimed !== 0) {
        if ((n & 255) === 0 && performance.now() - t0 > ${SPIN_MS}) claimed = 0;
      } else if (missed < ${MISSED_JOBS}) {
        Atomics.wait(w, ${GEN}, seen);
      } else {
        // Nobody notifies this word: a nap, not a wait for the job.
        Atomics.wait(w, ${BUSY} + index, 0, ${NAP_MS});
        break;
      }
    }
    if (gen === seen) continue;
    seen = gen;
    if (Atomics.load(w, ${STOP}) !== 0) return;
    if (Atomics.load(w, ${HOOK}) === index) {
      fail(new Error("failing on purpose (test hook)"));
      Atomics.store(w, ${HOOK}, 0);
      Atomics.notify(w, ${DONE});
      continue;
    }
    claimed = 0;
    for (;;) {
      const c = Atomics.load(w, ${CLAIM});
      if ((c & 0xffff) >= c >>> 16) break;
      if (Atomics.compareExchange(w, ${CLAIM}, c, c + 1) !== c) continue;
      claimed++;
      Atomics.store(w, ${BUSY} + index, 1);
      try {
        run(c & 0xffff);
      } catch (e) {
        fail(e);
      }
      Atomics.store(w, ${BUSY} + index, 0);
      Atomics.add(w, ${BUSY} + threads + index, 1);
      if (Atomics.add(w, ${DONE}, 1) + 1 === c >>> 16) Atomics.notify(w, ${DONE});
    }
    missed = claimed === 0 ? missed + 1 : 0;
  }
}`;
}

export class ThreadError extends Error {
  override name = "ThreadError";
}

/** What the pool needs of a thread the host started. */
export interface ThreadHandle {
  /** Stops it at once (it may be in the middle of a call); resolves once it has. */
  terminate(): Promise<unknown>;
}

export interface ThreadPoolOptions {
  memory: WebAssembly.Memory;
  /** The control block (controlBytes(handles.length + 1) bytes, zeroed). */
  control: number;
  /** The main thread's kernels, and its own regions. */
  exports: KernelExports;
  own: Required<OwnRegions>;
  /** Thread i is handles[i − 1], already running threadLoopSource over `memory` with this control block. */
  handles: ThreadHandle[];
  /** Give up on a job after this long (default 60 s). */
  timeoutMs?: number;
}

/**
 * Runs jobs of chunks on the main thread and the others, and returns when
 * all chunks are done. The first failure of a thread — its calls threw, it
 * exited, it did not finish in time — closes the pool: `run` throws a
 * ThreadError naming the thread and `usable` turns false, so the engine
 * carries on with one thread.
 */
export class ThreadPool {
  /** Threads including the main one. */
  readonly size: number;
  private readonly memory: WebAssembly.Memory;
  private readonly control: number;
  private readonly exports: KernelExports;
  private readonly own: Required<OwnRegions>;
  private readonly handles: ThreadHandle[];
  private readonly timeoutMs: number;
  private readonly words: Int32Array;
  private readonly floats: Float32Array;
  /** Whether the main thread claims chunks too; tests turn it off so that every chunk runs on the other threads. */
  mainClaims = true;
  private why: string | undefined;
  private failOn = 0;
  private mainRan = 0;
  private stopping: Promise<unknown> | undefined;

  constructor(opts: ThreadPoolOptions) {
    ({ memory: this.memory, control: this.control, exports: this.exports, own: this.own, handles: this.handles } = opts);
    this.size = opts.handles.length + 1;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.words = new Int32Array(this.memory.buffer, this.control, controlBytes(this.size) / 4);
    this.floats = new Float32Array(this.memory.buffer, this.control, controlBytes(this.size) / 4);
  }

  get usable(): boolean {
    return this.why === undefined;
  }

  /** Why the pool closed (a failure, or close()); undefined while usable. */
  get reason(): string | undefined {
    return this.why;
  }

  /** Test hook: thread `thread` (1..size−1) fails at its next job, as if one of its kernel calls had thrown. */
  failNext(thread: number): void {
    if (!Number.isInteger(thread) || thread < 1 || thread >= this.size) throw new RangeError(`failNext: thread must be in 1..${this.size - 1}, got ${thread}`);
    this.failOn = thread;
  }

  /** Chunks each thread has run so far (index 0: the main thread). */
  chunksRun(): number[] {
    return Array.from({ length: this.size }, (_, i) => (i === 0 ? this.mainRan : Atomics.load(this.words, BUSY + this.size + i)));
  }

  /** The host saw a thread end or fail outside a job: the next run throws. */
  lost(thread: number, why: string): void {
    if (this.why === undefined) this.fail(`engine thread ${thread} ${why}`);
  }

  /** Runs the chunks (in as many jobs as the control block needs) and returns when all are done. */
  run(chunks: readonly Chunk[]): void {
    if (this.why !== undefined) throw new ThreadError(this.why);
    let from = 0;
    while (from < chunks.length) {
      let to = from;
      for (let calls = 0; to < chunks.length && to - from < MAX_CHUNKS && calls + chunks[to].length <= MAX_CALLS; to++) calls += chunks[to].length;
      if (to === from) throw new RangeError(`a chunk of ${chunks[from].length} calls (at most ${MAX_CALLS})`);
      this.job(chunks.slice(from, to));
      from = to;
    }
  }

  /** Stops the threads; resolves when they have ended. The pool is unusable afterwards. */
  close(): Promise<void> {
    if (this.why === undefined) this.fail("closed");
    return this.stopping!.then(() => {});
  }

  private job(chunks: readonly Chunk[]): void {
    const w = this.words;
    let call = 0;
    chunks.forEach((chunk, i) => {
      w[CHUNKS + 2 * i] = call;
      w[CHUNKS + 2 * i + 1] = chunk.length;
      for (const { op, args } of chunk) {
        checkArity(op, args);
        const sig = OPS[op];
        const p = CALLS + call++ * CALL_WORDS;
        w[p] = OP_NAMES.indexOf(op);
        let own = 0;
        args.forEach((x, a) => {
          if (typeof x !== "number") {
            own |= OWN_CODE[x.region] << (2 * a);
            w[p + 2 + a] = x.offset;
          } else if (sig[a] === "f") this.floats[p + 2 + a] = x;
          else w[p + 2 + a] = x;
        });
        w[p + 1] = own;
      }
    });
    const total = chunks.length;
    Atomics.store(w, DONE, 0);
    if (this.failOn) Atomics.store(w, HOOK, this.failOn);
    this.failOn = 0;
    Atomics.store(w, CLAIM, total << 16);
    Atomics.add(w, GEN, 1);
    Atomics.notify(w, GEN);
    // Our share: whatever is left when we come to claim it. A failing call does not stop the claiming, so that the job completes.
    let mainError: unknown;
    while (this.mainClaims) {
      const c = Atomics.load(w, CLAIM);
      const i = c & 0xffff;
      if (i >= total) break;
      if (Atomics.compareExchange(w, CLAIM, c, c + 1) !== c) continue;
      try {
        runChunk(this.exports, this.memory, chunks[i], this.own);
      } catch (e) {
        mainError ??= e;
      }
      this.mainRan++;
      Atomics.add(w, DONE, 1);
    }
    // Wait even when a call here threw: the others may still be writing into memory the caller will reuse.
    this.await(total);
    if (mainError !== undefined) throw mainError;
  }

  /** Until all `total` chunks are done and the test hook (if armed) has fired. */
  private await(total: number): void {
    const w = this.words;
    const over = () => Atomics.load(w, DONE) === total && Atomics.load(w, HOOK) === 0;
    if (!over()) {
      const t0 = performance.now();
      for (let n = 1; !over(); n++) {
        if ((n & 255) !== 0) continue;
        const waited = performance.now() - t0;
        if (waited < SPIN_MS) continue;
        if (waited > this.timeoutMs) {
          const late = [];
          for (let i = 1; i < this.size; i++) if (Atomics.load(w, BUSY + i) !== 0 || Atomics.load(w, HOOK) === i) late.push(i);
          throw this.fail(`engine thread ${late.join(", ")} did not finish a job within ${this.timeoutMs / 1000} s`);
        }
        const done = Atomics.load(w, DONE);
        if (!over()) Atomics.wait(w, DONE, done, Math.min(1000, this.timeoutMs));
      }
    }
    const failed = Atomics.load(w, FAILED);
    if (failed !== 0) {
      const len = Atomics.load(w, MSG_LEN);
      const msg = new TextDecoder().decode(new Uint8Array(this.memory.buffer, this.control + MSG * 4, len).slice());
      throw this.fail(`engine thread ${failed - 1} failed: ${msg.split("\n")[0]}`);
    }
  }

  /** Marks the pool closed for `why`, stops the threads, and returns the error a caller sees. */
  private fail(why: string): ThreadError {
    this.why = why;
    Atomics.store(this.words, STOP, 1);
    Atomics.add(this.words, GEN, 1);
    Atomics.notify(this.words, GEN);
    this.stopping = Promise.allSettled(this.handles.map((h) => h.terminate()));
    return new ThreadError(`${why}; the engine continues on one thread`);
  }
}
