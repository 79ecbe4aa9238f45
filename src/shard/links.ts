/**
 * How the coordinator reaches a shard's Durable Object in workerd. Two transports, same frames:
 *
 *   stream  one RPC per shard per request: `session(requests)` returns the reply stream, and every
 *           hop of that request is a frame on the pair. What the platform counts as invocations and
 *           subrequests is the session, not the tokens (the design the issue asks for).
 *   rpc     one RPC per hop (`call(frame)`): simpler, and the baseline the stream is measured
 *           against; per request it costs (layer shards + head shards) × forward passes.
 */
import type { ShardLink } from "./engine";
import { FrameReader } from "./protocol";

/** The RPC surface of src/shard/worker.ts's Durable Object, as a stub exposes it. */
export interface ShardStub {
  call(frame: Uint8Array): Promise<Uint8Array>;
  session(requests: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array>>;
}

export class RpcLink implements ShardLink {
  invocations = 0;
  constructor(private readonly stub: () => ShardStub) {}
  async call(frame: Uint8Array): Promise<Uint8Array> {
    this.invocations++;
    return new Uint8Array(await this.stub().call(frame));
  }
  close(): void {}
}

/**
 * Sessions a link keeps open for scopes that may drive again. A request that drives a step again
 * after others did finds its own session and opens none (its invocations stay one per shard, as
 * admission counts them); past this many, the least recently used is dropped and reopened if that
 * request drives again, as every one was before.
 */
export const MAX_SESSIONS = 16;

interface Session {
  writer: WritableStreamDefaultWriter<Uint8Array>;
  reader: FrameReader;
}

export class StreamLink implements ShardLink {
  invocations = 0;
  /** By scope, least recently used first. */
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly stub: () => ShardStub) {}

  async call(frame: Uint8Array, scope: string): Promise<Uint8Array> {
    let s = this.sessions.get(scope);
    if (s) this.sessions.delete(scope);
    else {
      const pipe = new IdentityTransformStream();
      this.invocations++;
      const replies = await this.stub().session(pipe.readable);
      s = { writer: pipe.writable.getWriter(), reader: new FrameReader(replies) };
      // Another request's session is that request's I/O object, which this request must not
      // touch (not even to close it): an evicted one's reference is only dropped.
      if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    }
    this.sessions.set(scope, s);
    // An identity stream has no buffer: the write completes as the shard reads it, so wait for both.
    const [, reply] = await Promise.all([s.writer.write(frame), s.reader.next()]);
    if (!reply) throw new Error("the shard closed the session");
    return reply;
  }

  close(scope: string): void {
    const s = this.sessions.get(scope);
    this.sessions.delete(scope);
    if (!s) return;
    // Only reached from the request that opened it, after a call failed: the pair may already be
    // broken, so failures to close are expected and carry no news.
    s.writer.close().catch(() => {});
    s.reader.cancel().catch(() => {});
  }

  forget(scope: string): void {
    this.sessions.delete(scope);
  }

  /** Sessions held now (for tests). */
  get open(): number {
    return this.sessions.size;
  }
}
