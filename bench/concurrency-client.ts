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
  /** Prompt tokens (usage). */
  promptTokens?: number;
  /** The answer's text, and its token ids when the request asked for them (return_token_ids). */
  text: string;
  tokenIds: number[];
}

export interface StreamOptions {
  /** Sampling temperature (default 0.7, the model card's; top_p is always 0.95). */
  temperature?: number;
  signal?: AbortSignal;
  /** Called at each token event's arrival (ms, performance.now()). */
  onToken?: (at: number) => void;
  /** Ask for the answer's token ids (vLLM's return_token_ids). */
  returnTokenIds?: boolean;
}

/** The token-id prompt of request `r`: prompts of different r differ from their first token, so none shares a prefix with another. */
export const promptOf = (r: number, length: number): number[] => promptTokens(length + r).slice(r);

interface Chunk {
  error?: { message: string };
  choices: { finish_reason: string | null; text?: string; delta?: { content?: string | null }; token_ids?: number[] }[];
  usage?: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } };
}

/**
 * One streamed completion. An abort through `signal` ends it quietly: the timing holds the tokens
 * that had arrived.
 */
export function streamCompletion(url: string, prompt: number[], maxTokens: number, seed: number, o: StreamOptions = {}): Promise<StreamTiming> {
  return streamRequest(`${url}/v1/completions`, { prompt, max_tokens: maxTokens, seed }, o);
}

/** One streamed chat turn, as a client that sends the conversation as text does. */
export function streamChat(url: string, messages: { role: string; content: string }[], maxTokens: number, seed: number, o: StreamOptions = {}): Promise<StreamTiming> {
  return streamRequest(`${url}/v1/chat/completions`, { messages, max_tokens: maxTokens, seed }, o);
}

async function streamRequest(endpoint: string, fields: Record<string, unknown>, o: StreamOptions): Promise<StreamTiming> {
  const start = performance.now();
  const ids = o.returnTokenIds ? { return_token_ids: true } : {};
  const send = () =>
    fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...fields, temperature: o.temperature ?? 0.7, top_p: 0.95, stream: true, stream_options: { include_usage: true }, ...ids }),
      signal: o.signal,
    });
  const out: StreamTiming = { start, tokens: [], text: "", tokenIds: [] };
  try {
    // Kept-alive connections the server closed while a peer ran are not retried by fetch for a POST: retry on a new one.
    const res = await send()
      .catch((e) => (o.signal?.aborted ? Promise.reject(e) : send()))
      .catch((e) => (o.signal?.aborted ? Promise.reject(e) : send()));
    if (res.status !== 200) throw new Error(`${endpoint}: HTTP ${res.status}: ${await res.text()}`);
    for await (const event of sseEventsOf(res)) {
      const block = event.trimEnd();
      if (!block.startsWith("data: ") || block === "data: [DONE]") continue;
      const ev = JSON.parse(block.slice(6)) as Chunk;
      if (ev.error) throw new Error(`${endpoint}: error event after ${out.tokens.length} tokens: ${ev.error.message}`);
      const choice = ev.choices[0];
      // A token's chunk carries text; chat's role chunk, the closing chunk (finish_reason) and the usage chunk carry none.
      const text = choice?.text ?? choice?.delta?.content ?? "";
      if (choice?.finish_reason === null && (text !== "" || choice.delta === undefined)) {
        const at = performance.now();
        out.tokens.push(at);
        o.onToken?.(at);
      }
      out.text += text;
      out.tokenIds.push(...(choice?.token_ids ?? []));
      if (ev.usage) {
        out.cached = ev.usage.prompt_tokens_details?.cached_tokens;
        out.promptTokens = ev.usage.prompt_tokens;
      }
    }
  } catch (e) {
    if (!o.signal?.aborted) throw e;
  }
  return out;
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
  return summarize(timings, (performance.now() - t0) / 1000, s.clients);
}

/** "node ×4: 40/100 requests, 52 s, ~78 s left" every PROGRESS_EVERY requests. */
export function progress(label: string, done: number, total: number, t0: number): void {
  if (done % PROGRESS_EVERY !== 0 && done !== total) return;
  const s = (performance.now() - t0) / 1000;
  const left = done < total ? `, ~${Math.round((s / done) * (total - done))} s left` : "";
  process.stderr.write(`  ${label}: ${done}/${total} requests, ${Math.round(s)} s${left}\n`);
}
