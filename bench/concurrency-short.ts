/**
 * The short-request target: "a short request arriving while 3 streams decode gets its first token
 * within its own prefill time plus 2 decode steps". Measured on one server:
 *   1. the short request alone (idle server): its time to first token, the median of a few;
 *   2. three long streams start; once all three decode, the decode step is their inter-token p50;
 *   3. while they decode, short requests are sent one at a time, each at a random point of a step,
 *      and each one's time to first token is compared with alone + 2 steps.
 * Why 2 steps: the request may arrive just after a step began (up to one step's wait), and a
 * prompt that rode in a step beside the three decode rows would pay a step's cost on top of its
 * prefill. The scheduler runs a prompt that fits in a step ahead of the decode rows instead
 * (docs/engine.md, "Batching (many users at once)"), so the wait is the one step at most.
 */
import { seededRandom } from "../src/util/index";
import { promptOf, streamCompletion, type StreamTiming } from "./concurrency-client";

export interface ShortCase {
  /** The short request alone: time to first token, median (ms). */
  alone_ms: number;
  /** Inter-token p50 of the three long streams while nothing else runs (ms): one decode step. */
  step_ms: number;
  /** alone + 2 steps. */
  bound_ms: number;
  /** Each short request's time to first token while the three decode (ms). */
  ttft_ms: number[];
  /** How many of them were within the bound. */
  within: number;
  /** Set when the case could not be measured as specified (e.g. the host ran fewer than 3 streams at once). */
  note?: string;
}

export interface ShortSpec {
  /** Prompt tokens of every request (the short one's and the long streams'). */
  prompt: number;
  /** Short requests sent while the three decode. */
  trials: number;
  /** Request index of the first request (prompts and seeds follow it). */
  first: number;
  label: string;
}

const LONG_STREAMS = 3;
const ALONE_RUNS = 5;
/** Tokens each long stream decodes with all three running before the step is read off. */
const CALM_TOKENS = 12;
/** The long streams' max_tokens: far more than the trials take, so none ends during them (they are aborted after). */
const LONG_TOKENS = 1024;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function shortRequestCase(url: string, s: ShortSpec): Promise<ShortCase> {
  let r = s.first;
  const short = async () => {
    const t = await streamCompletion(url, promptOf(r, s.prompt), 1, r++);
    if (t.tokens.length === 0) throw new Error("the short request got no token");
    return t.tokens[0] - t.start;
  };
  const alone: number[] = [];
  for (let i = 0; i < ALONE_RUNS; i++) alone.push(await short());
  const alone_ms = median(alone);

  const abort = new AbortController();
  const arrivals: number[][] = Array.from({ length: LONG_STREAMS }, () => []);
  const longs = arrivals.map((at) => {
    const id = r++;
    return streamCompletion(url, promptOf(id, s.prompt), LONG_TOKENS, id, { signal: abort.signal, onToken: (t) => at.push(t) });
  });
  // A stream that ends or fails ends the case: record it, and stop waiting.
  let ended: string | undefined;
  const watched: Promise<StreamTiming | undefined>[] = longs.map((p, i) =>
    p.then(
      (t) => {
        if (!abort.signal.aborted) ended ??= `long stream ${i + 1} ended after ${t.tokens.length} tokens`;
        return t;
      },
      (e: Error) => {
        ended ??= `long stream ${i + 1} failed: ${e.message}`;
        return undefined;
      },
    ),
  );
  const result = (fields: Partial<ShortCase>): ShortCase => ({ alone_ms, step_ms: NaN, bound_ms: NaN, ttft_ms: [], within: 0, ...fields });
  try {
    // Three streams decoding at once: each has its first token, then CALM_TOKENS more after the last first token.
    const waitMs = 30_000 + LONG_STREAMS * 10 * alone_ms;
    const deadline = performance.now() + waitMs;
    let allFrom = NaN;
    for (;;) {
      const started = arrivals.filter((a) => a.length > 0).length;
      if (ended) return result({ note: started < LONG_STREAMS ? `the host did not decode ${LONG_STREAMS} streams at once: ${ended} while ${LONG_STREAMS - started} had no token yet` : ended });
      if (started === LONG_STREAMS && Number.isNaN(allFrom)) allFrom = Math.max(...arrivals.map((a) => a[0]));
      if (started === LONG_STREAMS && arrivals.every((a) => a.filter((t) => t > allFrom).length >= CALM_TOKENS)) break;
      if (performance.now() > deadline) return result({ note: `the host did not decode ${LONG_STREAMS} streams at once (${started} of ${LONG_STREAMS} had a token within ${Math.round(waitMs / 1000)} s)` });
      await sleep(10);
    }
    const gaps = arrivals.flatMap((a) => a.slice(1).flatMap((t, i) => (a[i] > allFrom ? [t - a[i]] : [])));
    const step_ms = median(gaps);
    const bound_ms = alone_ms + 2 * step_ms;
    const random = seededRandom(7);
    const ttft: number[] = [];
    for (let i = 0; i < s.trials && !ended; i++) {
      await sleep(step_ms + random() * step_ms); // out of the previous short request's step, then a random point of one
      ttft.push(await short());
      process.stderr.write(`  ${s.label}: short request ${i + 1}/${s.trials} while ${LONG_STREAMS} decode: first token after ${Math.round(ttft[i])} ms (alone ${Math.round(alone_ms)} + 2 × ${Math.round(step_ms)} = ${Math.round(bound_ms)})\n`);
    }
    return result({ step_ms, bound_ms, ttft_ms: ttft, within: ttft.filter((t) => t <= bound_ms).length, note: ended ? `stopped early: ${ended}` : undefined });
  } finally {
    abort.abort();
    await Promise.all(watched);
  }
}
