/**
 * One generation at a time: the engine is single-threaded, and interleaving two requests would only
 * make both slower. Waiters queue in FIFO order up to `maxWaiting`; past that a request is refused
 * at once (429) rather than held for minutes. A waiter whose signal aborts leaves the queue.
 */
import { ApiError } from "./errors";

export type Release = () => void;

export class GenerationQueue {
  private busy = false;
  private readonly waiting: { grant: (r: Release) => void; fail: (e: unknown) => void; signal?: AbortSignal; onAbort: () => void }[] = [];

  constructor(
    readonly maxWaiting = 16,
    /** Seconds suggested to refused clients. */
    readonly retryAfter = 1,
  ) {}

  /** Requests waiting for the engine (not counting the one running). */
  get depth(): number {
    return this.waiting.length;
  }

  get running(): boolean {
    return this.busy;
  }

  /** Resolves with a release function once this request may use the engine. Call it exactly once. */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(new ApiError(499, "request aborted", "invalid_request_error", null, "aborted"));
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxWaiting) {
      return Promise.reject(
        new ApiError(429, `the server is busy: ${this.waiting.length} requests are already waiting for the engine; retry later`, "rate_limit_error", null, "queue_full", this.retryAfter),
      );
    }
    return new Promise<Release>((grant, fail) => {
      const entry = {
        grant,
        fail,
        signal,
        onAbort: () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          fail(new ApiError(499, "request aborted while queued", "invalid_request_error", null, "aborted"));
        },
      };
      signal?.addEventListener("abort", entry.onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (!next) {
        this.busy = false;
        return;
      }
      next.signal?.removeEventListener("abort", next.onAbort);
      next.grant(this.releaser());
    };
  }
}
