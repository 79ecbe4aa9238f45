/**
 * Lets the event loop run between tokens, so each SSE event is flushed as it is made and an
 * abort (client disconnect) is seen. setTimeout exists in Node, browsers and Workers alike
 * (setImmediate does not); a macrotask is needed because microtasks never let I/O run.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
