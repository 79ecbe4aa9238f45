/**
 * The load bench/concurrency.ts puts on a server: streamed completions over real HTTP and SSE,
 * with each token event's arrival timed at the client, and closed-loop clients that send the next
 * request as soon as theirs ends.
 */
import { sseEventsOf } from "../test/helpers/sse";
import { promptTokens } from "./common";
import { summarize, type ConcurrencyFigures, type RequestTiming } from "./concurrency-stats";

export interface StreamTiming extends RequestTiming {
  /** Prompt tokens the server took from its prefix cache (usage.prompt_tokens_details). */
  cached?: number;
}

export interface StreamOptions {
  /** Sampling temperature (default 0.7, the model card's; top_p is always 0.95). */
  temperature?: number;
  signal?: AbortSignal;
  /** Called at each token event's arrival (ms, performance.now()). */
  onToken?: (at: number) => void;
}

/** The token-id prompt of request `r`: prompts of different r differ from their first token, so none shares a prefix with another. */
export const promptOf = (r: number, length: number): number[] => promptTokens(length + r).slice(r);

/**
 * One streamed completion. An abort through `signal` ends it quietly: the timing holds the tokens
 * that had arrived.
 */
export async function streamCompletion(url: string, prompt: number[], maxTokens: number, seed: number, o: StreamOptions = {}): Promise<StreamTiming> {
  const start = performance.now();
  const send = () =>
    fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: o.temperature ?? 0.7, top_p: 0.95, seed, stream: true, stream_options: { include_usage: true } }),
      signal: o.signal,
    });
  const tokens: number[] = [];
  let cached: number | undefined;
  try {
    // Kept-alive connections the server closed while a peer ran are not retried by fetch for a POST: retry on a new one.
    const res = await send()
      .catch((e) => (o.signal?.aborted ? Promise.reject(e) : send()))
      .catch((e) => (o.signal?.aborted ? Promise.reject(e) : send()));
    if (res.status !== 200) throw new Error(`completion: HTTP ${res.status}: ${await res.text()}`);
    for await (const event of sseEventsOf(res)) {
      const block = event.trimEnd();
      if (!block.startsWith("data: ") || block === "data: [DONE]") continue;
      const ev = JSON.parse(block.slice(6)) as { error?: { message: string }; choices: { finish_reason: string | null }[]; usage?: { prompt_tokens_details?: { cached_tokens: number } } };
      if (ev.error) throw new Error(`completion: error event after ${tokens.length} tokens: ${ev.error.message}`);
      // A token's chunk; the closing chunk (finish_reason) and the usage chunk carry none.
      if (ev.choices[0]?.finish_reason === null) {
        const at = performance.now();
        tokens.push(at);
        o.onToken?.(at);
      }
      if (ev.usage) cached = ev.usage.prompt_tokens_details?.cached_tokens;
    }
  } catch (e) {
    if (!o.signal?.aborted) throw e;
  }
  return { start, tokens, cached };
}

export interface LoadSpec {
  /** Concurrent clients (streams). */
  clients: number;
  requests: number;
  prompt: number;
  decode: number;
  /** Request index of the first request (prompts and seeds follow it), so that no level reuses another's prompts. */
  first: number;
  /** "node ×4": names the run in progress lines. */
  label: string;
}

/** A progress line on stderr every this many finished requests. */
const PROGRESS_EVERY = 10;

/** `clients` closed-loop clients send streamed completions back to back until `requests` have run. */
export async function closedLoop(url: string, s: LoadSpec): Promise<ConcurrencyFigures> {
  let next = 0;
  const timings: RequestTiming[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: s.clients }, async () => {
      for (let r = next++; r < s.requests; r = next++) {
        timings.push(await streamCompletion(url, promptOf(s.first + r, s.prompt), s.decode, s.first + r));
        progress(s.label, timings.length, s.requests, t0);
      }
    }),
  );
  return summarize(timings, (performance.now() - t0) / 1000);
}

/** "node ×4: 40/100 requests, 52 s, ~78 s left" every PROGRESS_EVERY requests. */
export function progress(label: string, done: number, total: number, t0: number): void {
  if (done % PROGRESS_EVERY !== 0 && done !== total) return;
  const s = (performance.now() - t0) / 1000;
  const left = done < total ? `, ~${Math.round((s / done) * (total - done))} s left` : "";
  process.stderr.write(`  ${label}: ${done}/${total} requests, ${Math.round(s)} s${left}\n`);
}
