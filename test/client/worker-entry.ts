/**
 * Runs inside workerd (test/client/workerd.test.ts): the client bundle in a Worker, with web APIs
 * only — no `process`, no `Buffer`, no node: modules — talking to the real server over a socket.
 * It answers with a JSON report of what the client saw.
 */
import { APIUserAbortError, TruncatedStreamError, createClient } from "../../src/client/index";

interface Env {
  SERVER: string;
  PROXY: string;
}

async function scenario(name: string, env: Env): Promise<unknown> {
  if (name === "stream") {
    const s = createClient({ baseURL: env.SERVER }).complete({ prompt: "Hello", max_tokens: 8, temperature: 0 });
    let chunks = 0;
    for await (const _ of s) chunks++;
    return { text: s.textSoFar, chunks, finishReason: s.finishReason, usage: s.usage };
  }
  if (name === "abort") {
    const ac = new AbortController();
    const s = createClient({ baseURL: env.SERVER }).complete({ prompt: "x", max_tokens: 4000, temperature: 0 }, { signal: ac.signal });
    let chunks = 0;
    try {
      for await (const _ of s) if (++chunks === 1) ac.abort();
      return { error: null };
    } catch (e) {
      return { error: (e as Error).name, isAbort: e instanceof APIUserAbortError, chunks };
    }
  }
  if (name === "truncated") {
    try {
      await createClient({ baseURL: env.PROXY, maxRetries: 0 }).complete({ prompt: "Hello", max_tokens: 6, temperature: 0 }).text();
      return { error: null };
    } catch (e) {
      return { error: (e as Error).name, truncated: e instanceof TruncatedStreamError };
    }
  }
  if (name === "globals") {
    const g = globalThis as Record<string, unknown>;
    return { process: typeof g.process, Buffer: typeof g.Buffer, require: typeof g.require };
  }
  throw new Error(`unknown scenario ${name}`);
}

export default {
  async fetch(req: Request, env: Env): Promise<Response> {
    const name = new URL(req.url).pathname.slice(1);
    try {
      return Response.json(await scenario(name, env));
    } catch (e) {
      return Response.json({ crashed: String((e as Error).stack ?? e) }, { status: 500 });
    }
  },
};
