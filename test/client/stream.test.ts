/**
 * The client against the real Node server over a real socket: tokens arrive while the server is
 * still generating, abort and early exit stop the server's generation, chat streams, and frames
 * split at every byte (over the socket and through a stream that hands out one byte per read).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RunningServer } from "../../src/node/server";
import { APIUserAbortError, createClient, type CompletionChunk, type EdgelmClient } from "../../src/client/index";
import { completionChunk, gate, passThrough, startFaultProxy, startTinyServer, upstreamEvents, writeHead, type FaultProxy } from "./harness";

let server: RunningServer;
let proxy: FaultProxy;
let client: EdgelmClient;

beforeAll(async () => {
  server = await startTinyServer();
  proxy = await startFaultProxy(server.url);
  client = createClient({ baseURL: server.url, maxRetries: 0 });
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

const engineFreed = () => vi.waitFor(() => expect(server.queue.running).toBe(false), { timeout: 20_000, interval: 20 });

describe("edgelm/client against the Node server", { timeout: 60_000 }, () => {
  it("streams a completion: chunks, final text, finish reason, usage and request id", async () => {
    const whole = await client.completion({ prompt: "Hello", max_tokens: 8, temperature: 0 });
    const stream = client.complete({ prompt: "Hello", max_tokens: 8, temperature: 0 });
    const texts: string[] = [];
    for await (const chunk of stream) if (chunk.choices[0]) texts.push(chunk.choices[0].text);
    expect(texts.filter((t) => t !== "").length).toBe(8);
    expect(texts.join("")).toBe(whole.text);
    expect(await stream.text()).toBe(whole.text);
    expect(stream.finishReason).toBe("length");
    expect(stream.usage).toEqual({ prompt_tokens: 1, completion_tokens: 8, total_tokens: 9 });
    // The server sends x-request-id (the id its log line carries); the client reports that, not the chunks' id.
    expect(stream.requestId).toBe(stream.response?.headers.get("x-request-id"));
    expect(stream.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(stream.response?.status).toBe(200);
    expect(stream.response?.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(stream.attempts).toBe(1);
    expect(whole).toMatchObject({ finishReason: "length", usage: { completion_tokens: 8 } });
  });

  it("yields the first chunk while the server is still generating (the engine is busy at that moment)", async () => {
    const stream = client.complete({ prompt: "x", max_tokens: 4000, temperature: 0 });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    // 4000 tokens take the tiny model minutes: the generation cannot have finished yet.
    expect(server.queue.running).toBe(true);
    expect(stream.finishReason).toBeNull();
    await it.return?.();
    await engineFreed();
  });

  it("yields each chunk before the next one exists (proxy holds the rest until the first is consumed)", async () => {
    const release = gate();
    let sent = 0;
    proxy.handle(
      passThrough({
        onEvent: async (i) => {
          if (i === 1) await release.promise;
          sent = i + 1;
          return "send" as const;
        },
      }),
    );
    const c = createClient({ baseURL: proxy.url, maxRetries: 0 });
    const stream = c.complete({ prompt: "Hello", max_tokens: 6, temperature: 0 });
    let n = 0;
    for await (const chunk of stream) {
      if (n++ === 0) {
        // Only the first event has left the proxy; a buffering client would never get here.
        expect(sent).toBe(1);
        expect(chunk.choices[0].text).not.toBe("");
        release.open();
      }
    }
    expect(sent).toBeGreaterThan(6);
    expect(stream.finishReason).toBe("length");
  });

  it("an AbortSignal mid-stream ends the iteration with APIUserAbortError and stops the server's generation", async () => {
    const ac = new AbortController();
    const stream = client.complete({ prompt: "x", max_tokens: 4000, temperature: 0 }, { signal: ac.signal });
    let seen = 0;
    const err = await (async () => {
      for await (const _ of stream) if (++seen === 2) ac.abort();
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIUserAbortError);
    expect((err as Error).name).toBe("AbortError");
    expect(seen).toBe(2);
    await expect(stream.text()).rejects.toBeInstanceOf(APIUserAbortError);
    await engineFreed();
    // The engine is free for the next request.
    expect((await client.completion({ prompt: "y", max_tokens: 2, temperature: 0 })).usage?.completion_tokens).toBe(2);
  });

  it("an abort while the consumer is not reading closes the connection at once", async () => {
    const ac = new AbortController();
    const stream = client.complete({ prompt: "x", max_tokens: 4000, temperature: 0 }, { signal: ac.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    ac.abort();
    // Nobody calls next(): only the client closing the body can free the engine.
    await engineFreed();
    await expect(it.next()).rejects.toBeInstanceOf(APIUserAbortError);
  });

  it("stream.abort() and leaving the loop early both cancel the request", async () => {
    const s1 = client.complete({ prompt: "x", max_tokens: 4000, temperature: 0 });
    await expect(
      (async () => {
        for await (const _ of s1) s1.abort();
      })(),
    ).rejects.toBeInstanceOf(APIUserAbortError);
    await engineFreed();
    const s2 = client.complete({ prompt: "x", max_tokens: 4000, temperature: 0 });
    for await (const _ of s2) break;
    await expect(s2.text()).rejects.toBeInstanceOf(APIUserAbortError);
    await engineFreed();
  });

  it("an already-aborted signal sends nothing", async () => {
    const before = proxy.attempts;
    const c = createClient({ baseURL: proxy.url });
    await expect(c.complete({ prompt: "x" }, { signal: AbortSignal.abort() }).text()).rejects.toBeInstanceOf(APIUserAbortError);
    expect(proxy.attempts).toBe(before);
  });

  it("streams a chat: the role chunk, then content deltas matching the non-streamed answer", async () => {
    const messages = [
      { role: "system" as const, content: "Be brief." },
      { role: "user" as const, content: "Hi!" },
    ];
    const whole = await client.chatCompletion({ messages, max_tokens: 6, temperature: 0 });
    const stream = client.chat({ messages, max_tokens: 6, temperature: 0 });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].object).toBe("chat.completion.chunk");
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    expect(stream.textSoFar).toBe(whole.text);
    expect(whole.data.choices[0].message.content).toBe(whole.text);
    expect(stream.finishReason).toBe("length");
    expect(stream.usage?.completion_tokens).toBe(6);
    expect(stream.requestId).toBe(stream.response?.headers.get("x-request-id"));
  });

  it("survives a server that writes one byte at a time (multi-byte characters split too)", async () => {
    // Greedy output for "Hello" on the tiny model contains Japanese: 3-byte UTF-8 characters.
    const want = (await client.completion({ prompt: "Hello", max_tokens: 8, temperature: 0 })).text;
    expect(new TextEncoder().encode(want).length).toBeGreaterThan(want.length);
    let writes = 0;
    proxy.handle(async ({ res, upstream }) => {
      const up = await upstream();
      writeHead(res, up);
      for await (const raw of upstreamEvents(up)) {
        for (const byte of Buffer.from(raw)) {
          res.write(Buffer.of(byte));
          writes++;
          // One write per event-loop turn, so bytes leave as separate HTTP chunks.
          await new Promise((r) => setImmediate(r));
        }
      }
      res.end();
    });
    const stream = createClient({ baseURL: proxy.url }).complete({ prompt: "Hello", max_tokens: 8, temperature: 0 });
    expect(await stream.text()).toBe(want);
    expect(stream.usage?.completion_tokens).toBe(8);
    expect(writes).toBeGreaterThan(500);
  });
});

describe("SSE framing, one byte per read", () => {
  /** A fetch whose body hands out exactly one byte per read. */
  const byteFetch = (sse: string) => async () => {
    const bytes = new TextEncoder().encode(sse);
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i < bytes.length) c.enqueue(bytes.slice(i, ++i));
        else c.close();
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };

  it("reassembles events split mid-line, mid-JSON and mid-character; CRLF, comments and multi-line data", async () => {
    const a = JSON.stringify(completionChunk("héllo ", null));
    const b = JSON.stringify(completionChunk("wörld 😀", null));
    const [bHead, bTail] = [b.slice(0, 20), b.slice(20)];
    const sse =
      ": keep-alive\r\n\r\n" +
      `data: ${a}\r\n\r\n` +
      // One JSON value spread over two data lines (joined with "\n", which JSON allows between tokens).
      `data: ${bHead}\ndata: ${bTail}\n\n` +
      `data: ${JSON.stringify(completionChunk("", "stop"))}\n\n` +
      "data: [DONE]\n\n";
    const stream = createClient({ baseURL: "http://test", fetch: byteFetch(sse) }).complete({ prompt: "x" });
    const got: CompletionChunk[] = [];
    for await (const c of stream) got.push(c);
    expect(got.map((c) => c.choices[0].text)).toEqual(["héllo ", "wörld 😀", ""]);
    expect(stream.textSoFar).toBe("héllo wörld 😀");
    expect(stream.finishReason).toBe("stop");
  });
});
