/**
 * Lets the event loop run between tokens, so each SSE event is flushed as it is made and an
 * abort (client disconnect) is seen. A macrotask is needed because microtasks never let I/O run.
 * Node's setImmediate is one that waits for nothing; setTimeout(fn, 0) there waits at least
 * 1 ms, and the generator yields twice a token (~2 ms of a ~50 ms decode step, docs/engine.md).
 * Where there is no setImmediate (browsers, Workers) setTimeout is the portable task.
 */
const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    if (immediate) immediate(resolve);
    else setTimeout(resolve, 0);
  });
}
