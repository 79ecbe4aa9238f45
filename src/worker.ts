/**
 * Cloudflare Worker entry (module syntax): the OpenAI-compatible API over SSE, weights from R2.
 * Everything lives in src/worker/ and the platform-neutral src/api/; this file only wires the
 * fetch event to the isolate's app. Configuration: wrangler.toml and docs/worker.md.
 */
import { isolateApp, misconfigured } from "./worker/app";
import type { Env, ExecutionContextLike } from "./worker/env";

export type { Env } from "./worker/env";
// The per-key rate limiter's Durable Object class (bound as RATE_LIMITER; docs/worker.md, "Rate limits").
export { RateLimiter } from "./worker/rate-limiter";

export default {
  async fetch(req: Request, env: Env, ctx: ExecutionContextLike): Promise<Response> {
    let app;
    try {
      app = isolateApp(env);
    } catch (err) {
      console.log(`edgelm: ${(err as Error).message}`);
      return misconfigured(err);
    }
    return app.fetch(req, env, ctx);
  },
};
