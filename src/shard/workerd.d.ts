// The few workerd built-ins the shard runtime uses, declared structurally (the project does not
// load @cloudflare/workers-types globally; see src/worker/env.ts).
declare module "cloudflare:workers" {
  export abstract class DurableObject<Env = unknown> {
    protected readonly ctx: {
      waitUntil(p: Promise<unknown>): void;
      abort(reason?: string): void;
      storage: { get(key: string): Promise<unknown>; put(key: string, value: unknown): Promise<void>; sync(): Promise<void> };
    };
    protected readonly env: Env;
    constructor(ctx: unknown, env: Env);
  }
}

/** workerd's byte-oriented identity stream: what may cross an RPC boundary. */
declare class IdentityTransformStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
}
