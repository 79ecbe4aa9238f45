/**
 * AbortSignal plumbing without `AbortSignal.any` / `AbortSignal.timeout`, which older browsers and
 * some runtimes lack: child controllers that follow a parent, and an abortable sleep.
 */
import { APIUserAbortError } from "./errors";

/** A controller aborted when `parent` is; `dispose()` unhooks it so long-lived signals don't leak listeners. */
export function childController(parent: AbortSignal | undefined): { controller: AbortController; dispose(): void } {
  const controller = new AbortController();
  if (!parent) return { controller, dispose() {} };
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { controller, dispose() {} };
  }
  const onAbort = () => controller.abort(parent.reason);
  parent.addEventListener("abort", onAbort, { once: true });
  return { controller, dispose: () => parent.removeEventListener("abort", onAbort) };
}

/** Resolves after `ms`, or rejects with APIUserAbortError as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new APIUserAbortError(undefined, { cause: signal.reason }));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new APIUserAbortError(undefined, { cause: signal.reason }));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A watchdog that aborts `controller` when not fed for `ms` (undefined or ≤ 0: never). `fired`
 * tells afterwards whether an abort came from it rather than from the caller.
 */
export class Watchdog {
  #timer: ReturnType<typeof setTimeout> | undefined;
  fired = false;

  constructor(
    private readonly controller: AbortController,
    private readonly ms: number | undefined,
  ) {}

  arm(): void {
    this.stop();
    if (this.ms === undefined || this.ms <= 0 || !Number.isFinite(this.ms)) return;
    this.#timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new Error(`timed out after ${this.ms} ms`));
    }, this.ms);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
