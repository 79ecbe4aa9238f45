/**
 * The main thread's side of a multi-threaded engine, and the loop each extra
 * thread runs. Host-neutral (SharedArrayBuffer and Atomics only): starting
 * the threads is the host's job (src/engine/node.ts, with Node's
 * worker_threads). workerd has no threads, so the Worker never builds a pool.
 *
 * Each extra thread has its own instance of the kernel module over the one
 * shared memory and runs lists of kernel calls that the main thread writes
 * into a control block in that memory (./row-split.ts decides the calls).
 * Why not postMessage: a decode step runs ~100 split products of a few
 * hundred µs each; a message costs tens of µs and an event-loop turn on both
 * sides (and the main thread's loop is blocked inside forward() anyway).
 * Handing a job over through a few words of shared memory costs about a
 * microsecond while the thread spins, and one futex wake once it sleeps.
 *
 * Control block (Int32 words from `control`):
 *   GEN          job generation: the main thread bumps it and notifies to start a job
 *                (alone on its cache line: every idle thread spins on it)
 *   PENDING      threads still working on the job; the one that brings it to 0 notifies
 *   FAILED       0, or 1 + the index of the first thread whose calls threw
 *   STOP         nonzero: the threads return from their loop
 *   MSG_LEN, MSG that thread's error message (UTF-8, up to MSG_BYTES)
 *   slot i       thread i's words at SLOTS + i·SLOT_WORDS: the last generation it finished
 *                (names the late ones on a timeout), its call count, then CALL_WORDS words
 *                per call (an index into OPS and the arguments); the main thread's slot is unused
 */
import type { KernelExports } from "./kernels";

/** What a thread can be asked to run: a row-block copy, the test hook's failure, or a kernel export. */
export const OPS = [
  "copy",
  "fail",
  "matvec_q4r_q8a",
  "matmul_q4r_q8b",
  "matvec_q8_0_q8a",
  "matmul_q8_0_q8b",
  "matvec_q6r_q8a",
  "matvec_f32",
  "matvec_f16",
  "matvec_bf16",
] as const;
export type Op = (typeof OPS)[number];

/**
 * One call. Arguments are u32 (pointers, counts). `copy` moves `count` rows of
 * `bytes` from src (rows srcStride apart) to dst (rows dstStride apart): args
 * [src, dst, bytes, count, srcStride, dstStride].
 */
export interface Call {
  op: Op;
  args: number[];
}

const GEN = 0;
const PENDING = 16;
const FAILED = 17;
const STOP = 18;
const MSG_LEN = 19;
const MSG = 32;
const MSG_BYTES = 1024;
const SLOTS = MSG + MSG_BYTES / 4;
const CALL_WORDS = 8;
/** Calls per thread per job; longer lists run as several jobs. */
const MAX_CALLS = 256;
/** done, count, calls; a multiple of 16 words so that each slot starts a cache line. */
const SLOT_WORDS = Math.ceil((2 + MAX_CALLS * CALL_WORDS) / 16) * 16;

/** The current job generation (a thread started now waits for the next). */
export function generation(memory: WebAssembly.Memory, control: number): number {
  return Atomics.load(new Int32Array(memory.buffer, control, 1), GEN);
}

/** Bytes of the control block for `threads` threads. */
export function controlBytes(threads: number): number {
  return (SLOTS + threads * SLOT_WORDS) * 4;
}

/**
 * How long an idle thread spins before it sleeps, and how long the main
 * thread spins on the others before it does: the gaps between the products
 * of one step (norms, attention) are mostly shorter than this, so the handover
 * stays a memory write; between steps and requests they sleep.
 */
const SPIN_MS = 1;
/** A job far longer than any product means a thread is gone. */
const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * JavaScript source of `(exports, memory, control, index, threads, gen) => void`:
 * the loop an extra thread runs until STOP. `gen` is the generation when the
 * thread was started (the main thread may start a job before the thread
 * reaches its loop, so the thread must not read its starting point later). A string, not a function, because the
 * thread runs it without our TypeScript loader (Node evaluates the worker's
 * code as plain JavaScript); the constants above are spliced in.
 */
export function threadLoopSource(): string {
  return `(k, memory, control, index, threads, gen0) => {
  const ops = ${JSON.stringify(OPS)};
  const w = new Int32Array(memory.buffer, control, ${SLOTS} + threads * ${SLOT_WORDS});
  const slot = ${SLOTS} + index * ${SLOT_WORDS};
  let seen = gen0;
  for (;;) {
    let gen = Atomics.load(w, ${GEN});
    if (gen === seen) {
      const t0 = performance.now();
      for (let n = 1; (gen = Atomics.load(w, ${GEN})) === seen; n++) {
        if ((n & 255) === 0 && performance.now() - t0 > ${SPIN_MS}) Atomics.wait(w, ${GEN}, seen);
      }
    }
    seen = gen;
    if (Atomics.load(w, ${STOP}) !== 0) return;
    try {
      const u8 = new Uint8Array(memory.buffer);
      for (let j = 0, n = w[slot + 1]; j < n; j++) {
        const p = slot + 2 + j * ${CALL_WORDS};
        const op = ops[w[p]];
        if (op === "copy") {
          const src = w[p + 1] >>> 0, dst = w[p + 2] >>> 0, bytes = w[p + 3] >>> 0, count = w[p + 4] >>> 0, ss = w[p + 5] >>> 0, ds = w[p + 6] >>> 0;
          for (let r = 0; r < count; r++) u8.copyWithin(dst + r * ds, src + r * ss, src + r * ss + bytes);
        } else if (op === "fail") {
          throw new Error("failing on purpose (test hook)");
        } else {
          k[op](w[p + 1], w[p + 2], w[p + 3], w[p + 4], w[p + 5], w[p + 6]);
        }
      }
    } catch (e) {
      if (Atomics.compareExchange(w, ${FAILED}, 0, index + 1) === 0) {
        const text = new TextEncoder().encode(String(e)).subarray(0, ${MSG_BYTES});
        new Uint8Array(memory.buffer, control + ${MSG * 4}, ${MSG_BYTES}).set(text);
        Atomics.store(w, ${MSG_LEN}, text.length);
      }
    }
    Atomics.store(w, slot, gen);
    if (Atomics.sub(w, ${PENDING}, 1) === 1) Atomics.notify(w, ${PENDING});
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
  /** Give up on a job after this long (default 60 s). */
  timeoutMs?: number;
}

/**
 * Runs per-thread call lists: list 0 on the calling (main) thread, list i on
 * thread i, and returns when all are done. The first failure of a thread —
 * its calls threw, it exited, it did not finish in time — closes the pool:
 * `run` throws a ThreadError naming the thread and `usable` turns false, so
 * the engine carries on with one thread.
 */
export class ThreadPool {
  /** Threads including the main one. */
  readonly size: number;
  private readonly words: Int32Array;
  private readonly timeoutMs: number;
  private why: string | undefined;
  private failOn = 0;
  private stopping: Promise<unknown> | undefined;

  /** `handles[i − 1]` is thread i, already running threadLoopSource over `memory` with this control block. */
  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly control: number,
    private readonly exports: KernelExports,
    private readonly handles: ThreadHandle[],
    opts: ThreadPoolOptions = {},
  ) {
    this.size = handles.length + 1;
    this.words = new Int32Array(memory.buffer, control, controlBytes(this.size) / 4);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get usable(): boolean {
    return this.why === undefined;
  }

  /** Why the pool closed (a failure, or close()); undefined while usable. */
  get reason(): string | undefined {
    return this.why;
  }

  /** Test hook: thread `thread` (1..size−1) throws on its next job, as if one of its kernel calls had. */
  failNext(thread: number): void {
    if (!Number.isInteger(thread) || thread < 1 || thread >= this.size) throw new RangeError(`failNext: thread must be in 1..${this.size - 1}, got ${thread}`);
    this.failOn = thread;
  }

  /** The host saw a thread end or fail outside a job: the next run throws. */
  lost(thread: number, why: string): void {
    if (this.why === undefined) this.fail(`engine thread ${thread} ${why}`);
  }

  /** `lists[i]` runs on thread i (0: here). Lists longer than a control block holds run as several jobs. */
  run(lists: Call[][]): void {
    if (lists.length !== this.size) throw new RangeError(`run: ${lists.length} lists for ${this.size} threads`);
    if (this.why !== undefined) throw new ThreadError(this.why);
    if (this.failOn) {
      lists = lists.map((l, i) => (i === this.failOn ? [{ op: "fail" as const, args: [] }, ...l] : l));
      this.failOn = 0;
    }
    const longest = Math.max(...lists.map((l) => l.length));
    for (let from = 0; from < longest; from += MAX_CALLS) this.job(lists.map((l) => l.slice(from, from + MAX_CALLS)));
  }

  /** Stops the threads; resolves when they have ended. The pool is unusable afterwards. */
  close(): Promise<void> {
    if (this.why === undefined) this.fail("closed");
    return this.stopping!.then(() => {});
  }

  private job(lists: Call[][]): void {
    const w = this.words;
    for (let i = 1; i < this.size; i++) {
      const slot = SLOTS + i * SLOT_WORDS;
      w[slot + 1] = lists[i].length;
      lists[i].forEach((call, j) => {
        const p = slot + 2 + j * CALL_WORDS;
        w[p] = OPS.indexOf(call.op);
        for (let a = 0; a < call.args.length; a++) w[p + 1 + a] = call.args[a];
      });
    }
    Atomics.store(w, PENDING, this.size - 1);
    const gen = (Atomics.load(w, GEN) + 1) | 0;
    Atomics.store(w, GEN, gen);
    Atomics.notify(w, GEN);
    let mainError: unknown;
    try {
      for (const call of lists[0]) this.call(call);
    } catch (e) {
      mainError = e;
    }
    // Wait even when our share threw: the others are still writing into memory the caller may reuse.
    this.await(gen);
    if (mainError !== undefined) throw mainError;
  }

  private await(gen: number): void {
    const w = this.words;
    if (Atomics.load(w, PENDING) !== 0) {
      const t0 = performance.now();
      for (let n = 1; Atomics.load(w, PENDING) !== 0; n++) {
        if ((n & 255) !== 0) continue;
        const waited = performance.now() - t0;
        if (waited < SPIN_MS) continue;
        if (waited > this.timeoutMs) {
          const late = [];
          for (let i = 1; i < this.size; i++) if (Atomics.load(w, SLOTS + i * SLOT_WORDS) !== gen) late.push(i);
          throw this.fail(`engine thread ${late.join(", ")} did not finish a job within ${this.timeoutMs / 1000} s`);
        }
        const pending = Atomics.load(w, PENDING);
        if (pending !== 0) Atomics.wait(w, PENDING, pending, Math.min(1000, this.timeoutMs));
      }
    }
    const failed = Atomics.load(w, FAILED);
    if (failed !== 0) {
      const len = Atomics.load(w, MSG_LEN);
      const msg = new TextDecoder().decode(new Uint8Array(this.memory.buffer, this.control + MSG * 4, len).slice());
      throw this.fail(`engine thread ${failed - 1} failed: ${msg.split("\n")[0]}`);
    }
  }

  private call({ op, args }: Call): void {
    if (op === "copy") {
      const [src, dst, bytes, count, ss, ds] = args.map((a) => a >>> 0);
      const u8 = new Uint8Array(this.memory.buffer);
      for (let r = 0; r < count; r++) u8.copyWithin(dst + r * ds, src + r * ss, src + r * ss + bytes);
    } else if (op === "fail") {
      throw new Error("failing on purpose (test hook)");
    } else {
      (this.exports[op] as (...a: number[]) => void)(...args);
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
