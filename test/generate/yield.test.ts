/**
 * The generator's yield between tokens: it must let I/O in (an SSE write, a disconnect), and in
 * Node it must not be a zero-delay setTimeout, which waits at least 1 ms — twice a token.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { yieldToEventLoop } from "../../src/generate/yield";

describe("yieldToEventLoop", () => {
  afterEach(() => vi.restoreAllMocks());

  it("lets pending I/O complete while a loop does nothing but yield", async () => {
    let done = false;
    void readFile(fileURLToPath(import.meta.url)).then(() => (done = true));
    let yields = 0;
    while (!done && yields < 100_000) {
      await yieldToEventLoop();
      yields++;
    }
    expect(done).toBe(true);
  });

  it("in Node, takes no timer (setTimeout(fn, 0) is a 1 ms wait there)", async () => {
    const timer = vi.spyOn(globalThis, "setTimeout");
    for (let i = 0; i < 5; i++) await yieldToEventLoop();
    expect(timer).not.toHaveBeenCalled();
  });
});
