/**
 * Zero-delay timers in this worker without the browsers' 4 ms clamp. The HTML timer rules raise a
 * nested `setTimeout(fn, 0)` to at least 4 ms, and the generator yields that way once per token
 * (src/generate/yield.ts: so SSE events flush and aborts are seen): 4 ms a token more than halved
 * decode speed on small models and cost ~2× on the 1.6B's shapes (docs/local.md, Speed). A
 * MessageChannel message is a task as well, so the yield still lets other messages in, but it is
 * not clamped. The patch is global on purpose and safe here: this dedicated worker runs only our
 * code, and every timer with a real delay (keep-alives, watchdogs) still goes to setTimeout.
 */
type Timer = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => number;
type Clear = (id?: number) => void;

export function unclampZeroDelayTimers(scope: { setTimeout: Timer; clearTimeout: Clear }): void {
  const channel = new MessageChannel();
  const due = new Map<number, () => void>();
  // Ids below zero never collide with the browser's own (positive) timer ids.
  let next = -1;
  channel.port1.onmessage = (ev: MessageEvent<number>) => {
    const run = due.get(ev.data);
    due.delete(ev.data);
    run?.();
  };
  const setTimeout = scope.setTimeout.bind(scope);
  const clearTimeout = scope.clearTimeout.bind(scope);
  scope.setTimeout = (fn, ms, ...args) => {
    if (ms && ms > 0) return setTimeout(fn, ms, ...args);
    const id = next--;
    due.set(id, () => fn(...args));
    channel.port2.postMessage(id);
    return id;
  };
  scope.clearTimeout = (id) => {
    if (id !== undefined && id < 0) due.delete(id);
    else clearTimeout(id);
  };
}
