import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeListener } from "../../src/node/server";

// A long streamed response whose every chunk exceeds the socket's high-water mark makes each
// write wait for `drain`; the wait must not leave a `close` listener behind per chunk.
const CHUNKS = 200;
const CHUNK = 64 * 1024;

describe("nodeListener under backpressure", () => {
  let server: Server;
  let url: string;
  const closeListeners: number[] = [];
  let backedUp = 0;

  beforeAll(async () => {
    const listener = nodeListener(async () => {
      let sent = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent++ === CHUNKS) return c.close();
            c.enqueue(new Uint8Array(CHUNK).fill(97));
          },
        }),
      );
    });
    server = createServer((req, res) => {
      // Each write records the close listeners present and whether it backed up.
      const write = res.write.bind(res) as (chunk: Uint8Array) => boolean;
      res.write = ((chunk: Uint8Array) => {
        closeListeners.push(res.listenerCount("close"));
        const ok = write(chunk);
        if (!ok) backedUp++;
        return ok;
      }) as typeof res.write;
      listener(req, res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("streams every byte with a bounded number of close listeners", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const res = await fetch(url);
      const reader = res.body!.getReader();
      let bytes = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.length;
        // A slow reader, so the server's writes back up.
        await new Promise((r) => setTimeout(r, 2));
      }
      expect(bytes).toBe(CHUNKS * CHUNK);
    } finally {
      process.off("warning", onWarning);
    }
    expect(closeListeners.length).toBe(CHUNKS);
    // Enough waits that one leaked listener each would pass Node's limit of 10.
    expect(backedUp).toBeGreaterThan(12);
    // The listener's own disconnect watch, the body's cancel hook, and at most one wait's.
    expect(Math.max(...closeListeners)).toBeLessThanOrEqual(4);
    expect(warnings).not.toContain("MaxListenersExceededWarning");
  });
});
