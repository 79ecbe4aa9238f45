/**
 * StreamLink's sessions by scope, in Node over an echo shard: a request that drives again after
 * another did finds its own session open (no new invocation), a released sequence's session is
 * dropped, and at most MAX_SESSIONS are held (the least recently used goes, and is reopened if its
 * request drives again). The same link in workerd: test/shard/batched-workerd.test.ts and
 * driver-cancel-workerd.test.ts.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { MAX_SESSIONS, StreamLink, type ShardStub } from "../../src/shard/links";
import { decodeFrame, encodeFrame } from "../../src/shard/protocol";

beforeAll(() => {
  // workerd's identity byte stream; a TransformStream without a transformer is the same in Node.
  (globalThis as { IdentityTransformStream?: unknown }).IdentityTransformStream ??= TransformStream;
});

/** A shard that answers every frame with itself, counting the sessions opened. */
function echoShard() {
  const opened: number[] = [];
  const stub: ShardStub = {
    call: async (frame) => frame,
    session: async (requests) => {
      opened.push(opened.length);
      return requests;
    },
  };
  return { stub, opened };
}

const ask = async (link: StreamLink, scope: string, n: number) => decodeFrame<{ n: number }>(await link.call(encodeFrame({ n }), scope)).head.n;

describe("StreamLink sessions by scope", () => {
  it("a scope that drives again after another reuses its session; a released one opens anew", async () => {
    const { stub } = echoShard();
    const link = new StreamLink(() => stub);
    expect(await ask(link, "x", 1)).toBe(1);
    expect(await ask(link, "y", 2)).toBe(2);
    expect(await ask(link, "x", 3)).toBe(3);
    expect(await ask(link, "y", 4)).toBe(4);
    expect(link.invocations).toBe(2);
    link.forget("x");
    expect(link.open).toBe(1);
    expect(await ask(link, "x", 5)).toBe(5);
    expect(link.invocations).toBe(3);
  });

  it("holds at most MAX_SESSIONS, dropping the least recently used", async () => {
    const { stub } = echoShard();
    const link = new StreamLink(() => stub);
    for (let i = 0; i < MAX_SESSIONS; i++) await ask(link, `s${i}`, i);
    // s0 used again: s1 is now the least recently used.
    await ask(link, "s0", 0);
    await ask(link, "new", 99);
    expect(link.open).toBe(MAX_SESSIONS);
    expect(link.invocations).toBe(MAX_SESSIONS + 1);
    await ask(link, "s0", 0);
    expect(link.invocations).toBe(MAX_SESSIONS + 1);
    await ask(link, "s1", 1);
    expect(link.invocations).toBe(MAX_SESSIONS + 2);
  });

  it("close ends only its scope's session, which the next call reopens", async () => {
    const { stub } = echoShard();
    const link = new StreamLink(() => stub);
    await ask(link, "x", 1);
    await ask(link, "y", 2);
    link.close("x");
    expect(link.open).toBe(1);
    expect(await ask(link, "y", 3)).toBe(3);
    expect(await ask(link, "x", 4)).toBe(4);
    expect(link.invocations).toBe(3);
  });
});
