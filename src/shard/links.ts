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

export class StreamLink implements ShardLink {
  invocations = 0;
  private session?: { scope: string; writer: WritableStreamDefaultWriter<Uint8Array>; reader: FrameReader };

  constructor(private readonly stub: () => ShardStub) {}

  async call(frame: Uint8Array, scope: string): Promise<Uint8Array> {
    if (this.session?.scope !== scope) {
      // A session of another sequence was opened by an earlier request: workerd ended it with
      // that request, and its streams are that request's I/O objects, which this request must
      // not touch (not even to close them). Drop the reference only.
      this.session = undefined;
      const pipe = new IdentityTransformStream();
      this.invocations++;
      const replies = await this.stub().session(pipe.readable);
      this.session = { scope, writer: pipe.writable.getWriter(), reader: new FrameReader(replies) };
    }
    const s = this.session;
    // An identity stream has no buffer: the write completes as the shard reads it, so wait for both.
    const [, reply] = await Promise.all([s.writer.write(frame), s.reader.next()]);
    if (!reply) throw new Error("the shard closed the session");
    return reply;
  }

  close(): void {
    const s = this.session;
    this.session = undefined;
    if (!s) return;
    // Only reached from the request that opened it, after a call failed: the pair may already be
    // broken, so failures to close are expected and carry no news.
    s.writer.close().catch(() => {});
    s.reader.cancel().catch(() => {});
  }
}
