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
  /** Runs `task` in this runner's request; rejects at once once closed. */
  run<T>(task: () => Promise<T>): Promise<T>;
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
  const queue: Job[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  const keepAlive = setInterval(() => {}, KEEPALIVE_MS);
  (keepAlive as { unref?: () => void }).unref?.(); // Node: never what keeps a process up
  const loop = async () => {
    while (!closed) {
      // Started here, in this request: the tasks' I/O is this request's.
      while (queue.length) queue.shift()!.start();
      await new Promise<void>((r) => (wake = r));
    }
  };
  void loop();
  return {
    run<T>(task: () => Promise<T>): Promise<T> {
      if (closed) return Promise.reject(new RunnerClosedError("the request that held this sequence has ended"));
      return new Promise<T>((resolve, reject) => {
        queue.push({ start: () => void task().then(resolve, reject), refuse: reject });
        wake?.();
      });
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(keepAlive);
      for (const job of queue.splice(0)) job.refuse(new RunnerClosedError("the request that held this sequence has ended"));
      wake?.();
    },
    get closed() {
      return closed;
    },
  };
}
