/**
 * Where a batched step's I/O runs. In workerd every request has its own I/O context: a stream or
 * a session opened by one request cannot be used by another, a request whose only wait is a
 * promise that another request resolves is cancelled as hung, and a promise is settled in the
 * context of the request that made it. A batched step serves several requests at once, so the
 * sharded engine runs each step's shard frames in the context of one live request (the step's
 * driver, whose sessions then carry every frame of the steps it drives) and each sequence's own
 * embedding reads in that sequence's own context (they stay its subrequests).
 *
 * A runner is made by a sequence's request (newSequence runs there). It takes tasks from any
 * context and starts them in its own: they are queued, and a promise made in its own context wakes
 * its loop, so the loop (and so the task) continues there. While open it keeps a timer pending in
 * that context, so that the request is never seen as hung while it waits for a step run by
 * another. In Node there are no such contexts: directRunner runs the task where it is called.
 */

export interface RequestRunner {
  /** Runs `task` in this runner's request; rejects at once once closed. What awaits the result continues in its own request. */
  run<T>(task: () => Promise<T>): Promise<T>;
  /**
   * As run, but the promise belongs to this runner's request, so what awaits it continues there:
   * a scheduler whose step was started by a request that has since ended goes on in this one.
   */
  runOwned<T>(task: () => Promise<T>): Promise<T>;
  /**
   * Runs `work` in this runner's request, or `orElse` where this runner is closed (at once, or
   * inside close() for work still queued): never a rejection delivered to the poster's request,
   * which may have ended.
   */
  post(work: () => void, orElse: () => void): void;
  /** The request is done with its sequence: queued and later tasks are refused. */
  close(): void;
  readonly closed: boolean;
}

/** The request ended (its sequence was released) before the task could run in it. */
export class RunnerClosedError extends Error {
  override name = "RunnerClosedError";
}

/** Runs each task where run() is called (Node, tools, tests: one context). */
export function directRunner(): RequestRunner {
  let closed = false;
  return {
    run: (task) => (closed ? Promise.reject(new RunnerClosedError("the sequence was released")) : task()),
    runOwned: (task) => (closed ? Promise.reject(new RunnerClosedError("the sequence was released")) : task()),
    post: (work, orElse) => (closed ? orElse() : work()),
    close: () => void (closed = true),
    get closed() {
      return closed;
    },
  };
}

/** The keep-alive timer's period: any pending timer keeps the request from being seen as hung; rarely is cheap. */
const KEEPALIVE_MS = 10_000;

/** A runner bound to the request that calls this (workerd); see the file's comment. */
export function contextRunner(): RequestRunner {
  type Job = { start(): void; refuse(e: Error): void };
  const ended = () => new RunnerClosedError("the request that held this sequence has ended");
  type Deferred = { promise: Promise<unknown>; resolve(v: unknown): void; reject(e: unknown): void };
  const queue: Job[] = [];
  /** Promises made in this request, for runOwned: made by the loop, which runs here. */
  const spares: Deferred[] = [];
  const SPARES = 4;
  const deferred = (): Deferred => {
    let resolve!: (v: unknown) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<unknown>((res, rej) => ((resolve = res), (reject = rej)));
    return { promise, resolve, reject };
  };
  let wake: (() => void) | undefined;
  let closed = false;
  const keepAlive = setInterval(() => {}, KEEPALIVE_MS);
  (keepAlive as { unref?: () => void }).unref?.(); // Node: never what keeps a process up
  const loop = async () => {
    while (!closed) {
      while (spares.length < SPARES) spares.push(deferred());
      // Started here, in this request: the tasks' I/O is this request's.
      while (queue.length) queue.shift()!.start();
      await new Promise<void>((r) => (wake = r));
    }
  };
  void loop();
  return {
    run<T>(task: () => Promise<T>): Promise<T> {
      if (closed) return Promise.reject(ended());
      return new Promise<T>((resolve, reject) => {
        queue.push({ start: () => void task().then(resolve, reject), refuse: reject });
        wake?.();
      });
    },
    runOwned<T>(task: () => Promise<T>): Promise<T> {
      if (closed) return Promise.reject(ended());
      // Past the spares (several calls before the loop came round): a promise of the caller's, as run makes.
      const d = spares.shift() ?? deferred();
      queue.push({ start: () => void task().then(d.resolve, d.reject), refuse: d.reject });
      wake?.();
      return d.promise as Promise<T>;
    },
    post(work, orElse) {
      if (closed) return orElse();
      queue.push({ start: work, refuse: orElse });
      wake?.();
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(keepAlive);
      for (const job of queue.splice(0)) job.refuse(ended());
      wake?.();
    },
    get closed() {
      return closed;
    },
  };
}
