/**
 * The shared SSE pull reader over hand-made bodies: chunk boundaries anywhere, CRLF, comments
 * surfaced or skipped, the per-call time limit, the fatal buffer cap, and cancel reaching the body.
 */
import { describe, expect, it } from "vitest";
import { SseOverflowError, SseReader, SseTimeout, type SseItem } from "../../src/util/index";

const enc = new TextEncoder();

/** A body that hands out exactly these chunks, then either closes or stays open (to stall). */
function body(chunks: (string | Uint8Array)[], opts: { close?: boolean; onCancel?: (reason: unknown) => void } = {}): ReadableStream<Uint8Array> {
  const queue = [...chunks];
  return new ReadableStream<Uint8Array>({
    pull(ctl) {
      const c = queue.shift();
      if (c !== undefined) ctl.enqueue(typeof c === "string" ? enc.encode(c) : c);
      else if (opts.close !== false) ctl.close();
      else return new Promise(() => {});
    },
    cancel: opts.onCancel,
  });
}

async function drain<C extends boolean>(reader: SseReader<C>): Promise<SseItem<C>[]> {
  const out: SseItem<C>[] = [];
  for (let it = await reader.next(); it !== undefined; it = await reader.next()) out.push(it);
  return out;
}

describe("SseReader", () => {
  it("reassembles events split at every byte, multi-byte characters included", async () => {
    const text = 'data: {"t":"héllo €"}\n\nevent: progress\nid: 7\ndata: a\ndata: b\n\n';
    const bytes = enc.encode(text);
    const pieces = Array.from(bytes, (b) => Uint8Array.of(b));
    expect(await drain(new SseReader(body(pieces)))).toEqual([
      { type: "event", data: '{"t":"héllo €"}', event: undefined, id: undefined },
      { type: "event", data: "a\nb", event: "progress", id: "7" },
    ]);
  });

  it("reads CRLF and CR line endings, also when CR and LF arrive in different chunks", async () => {
    const events = await drain(new SseReader(body(["data: one\r", "\n\r\ndata: two\r\r", "data: three\r\n\r\n"])));
    expect(events.map((e) => e.data)).toEqual(["one", "two", "three"]);
  });

  it("skips comments by default and yields them when asked", async () => {
    const chunks = [": keep-alive\n\n", "data: x\n\n", ":\n\n"];
    expect(await drain(new SseReader(body(chunks)))).toEqual([{ type: "event", data: "x", event: undefined, id: undefined }]);
    expect(await drain(new SseReader(body(chunks), { comments: true }))).toEqual([
      { type: "comment", text: "keep-alive" },
      { type: "event", data: "x", event: undefined, id: undefined },
      { type: "comment", text: "" },
    ]);
  });

  it("drops an event the body's end cut off, unless told to keep it", async () => {
    expect(await drain(new SseReader(body(["data: a\n\n", "data: [DONE]"])))).toHaveLength(1);
    const kept = await drain(new SseReader(body(["data: a\n\n", "data: [DONE]"]), { keepUnterminated: true }));
    expect(kept.map((e) => e.data)).toEqual(["a", "[DONE]"]);
  });

  it("throws SseTimeout when no item arrives in time; a comment is an item and restarts the clock", async () => {
    const reader = new SseReader(body([": ping\n\n"], { close: false }), { comments: true });
    expect(await reader.next(1000)).toEqual({ type: "comment", text: "ping" });
    await expect(reader.next(30)).rejects.toBeInstanceOf(SseTimeout);
    await expect(reader.next(0)).rejects.toThrow(SseTimeout);
    await reader.cancel();
  });

  it("bounds the whole call, not each read: bytes that finish no item do not extend it", async () => {
    const trickle = new ReadableStream<Uint8Array>({
      async pull(ctl) {
        await new Promise((r) => setTimeout(r, 5));
        ctl.enqueue(enc.encode("x"));
      },
    });
    const reader = new SseReader(trickle);
    await expect(reader.next(60)).rejects.toBeInstanceOf(SseTimeout);
    await reader.cancel();
  });

  it("without a limit it waits as long as it takes", async () => {
    let push!: (s: string) => void;
    const slow = new ReadableStream<Uint8Array>({ start: (ctl) => void (push = (s) => ctl.enqueue(enc.encode(s))) });
    const reader = new SseReader(slow);
    const pending = reader.next();
    setTimeout(() => push("data: late\n\n"), 20);
    expect((await pending)?.data).toBe("late");
    await reader.cancel();
  });

  it("an event over the buffer cap is fatal, for every later call too, even with events queued", async () => {
    const reader = new SseReader(body([`data: ok\n\ndata: ${"x".repeat(200)}`, "\n\ndata: after\n\n"]), { maxBufferSize: 64 });
    const err = await reader.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SseOverflowError);
    expect(String(err)).toMatch(/SSE stream: .*max buffer size of 64/);
    await expect(reader.next()).rejects.toBe(err);
  });

  it("the overflow error can be the caller's own class", async () => {
    class Mine extends Error {}
    const reader = new SseReader(body([`data: ${"x".repeat(200)}`]), { maxBufferSize: 64, overflowError: (m) => new Mine(m) });
    await expect(reader.next()).rejects.toBeInstanceOf(Mine);
  });

  it("an event within the cap passes, however it was chunked", async () => {
    const data = "y".repeat(60);
    const reader = new SseReader(body([`data: ${data.slice(0, 30)}`, `${data.slice(30)}\n\n`]), { maxBufferSize: 128 });
    expect((await reader.next())?.data).toBe(data);
  });

  it("cancel cancels the body and ends the reader", async () => {
    let cancelled = false;
    const reader = new SseReader(body(["data: a\n\n"], { close: false, onCancel: () => void (cancelled = true) }));
    expect((await reader.next())?.data).toBe("a");
    const pending = reader.next();
    await reader.cancel();
    expect(cancelled).toBe(true);
    expect(await pending).toBeUndefined();
    expect(await reader.next()).toBeUndefined();
  });

  it("cancel releases a body whose stream already failed without throwing", async () => {
    const broken = new ReadableStream<Uint8Array>({ pull: (ctl) => ctl.error(new Error("reset")) });
    const reader = new SseReader(broken);
    await expect(reader.next()).rejects.toThrow("reset");
    await expect(reader.cancel()).resolves.toBeUndefined();
  });
});
