/**
 * Figures of a closed-loop concurrency run: aggregate tokens/s (served, and decode alone), time to
 * first token and inter-token latency percentiles.
 */

export interface RequestTiming {
  /** When the request was sent (ms, performance.now()). */
  start: number;
  /** When each generated token arrived. */
  tokens: number[];
}

export interface ConcurrencyFigures {
  requests: number;
  tokens: number;
  wall_s: number;
  /** Generated tokens of all requests over the wall time (prompts included in the time). */
  aggregate_tok_s: number;
  /**
   * Aggregate decode: tokens/s while all `streams` requests decode and none is waiting for its
   * first token (so no step carries a prompt): streams / the mean of those stretches' inter-token
   * intervals (decodeRate). Absent where the run gave no such interval.
   */
  decode_tok_s?: number;
  /** Seconds of inter-token intervals decode_tok_s rests on (summed over the streams). */
  decode_s?: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  itl_p50_ms: number;
  itl_p99_ms: number;
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/**
 * Decode alone, from the clients' own clocks. A closed loop's wall time also holds every request's
 * prompt (16 prompt tokens per 32 generated cost a third of it at prefill speed), while what
 * batching speeds up is the decode step. So: over the times when exactly `streams` requests have
 * their first token and none has been sent without it yet (no prompt in flight, no stream between
 * requests), each stream's gaps between consecutive tokens are decode steps of all `streams` rows;
 * the rate is streams / their mean. Gaps touching any other time are left out.
 */
export function decodeRate(timings: RequestTiming[], streams: number): { tok_s: number; seconds: number } | undefined {
  // +1 prefilling at a request's start, -1 prefilling / +1 decoding at its first token, -1 decoding at its last.
  const events: [number, number, number][] = [];
  for (const t of timings) {
    if (!t.tokens.length) continue;
    events.push([t.start, 1, 0], [t.tokens[0], -1, 1], [t.tokens[t.tokens.length - 1], 0, -1]);
  }
  events.sort((a, b) => a[0] - b[0]);
  // Pure stretches [from, to): prefilling 0 and decoding == streams.
  const pure: [number, number][] = [];
  let prefilling = 0;
  let decoding = 0;
  let from: number | undefined;
  for (let i = 0; i < events.length; ) {
    const at = events[i][0];
    for (; i < events.length && events[i][0] === at; i++) {
      prefilling += events[i][1];
      decoding += events[i][2];
    }
    const ok = prefilling === 0 && decoding === streams;
    if (ok && from === undefined) from = at;
    else if (!ok && from !== undefined) {
      pure.push([from, at]);
      from = undefined;
    }
  }
  let n = 0;
  let ms = 0;
  let k = 0;
  const gaps = timings.flatMap((t) => t.tokens.slice(1).map((b, i): [number, number] => [t.tokens[i], b])).sort((x, y) => x[0] - y[0]);
  for (const [a, b] of gaps) {
    while (k < pure.length && pure[k][1] <= a) k++;
    if (k < pure.length && pure[k][0] <= a && b <= pure[k][1]) {
      n++;
      ms += b - a;
    }
  }
  return n && ms > 0 ? { tok_s: (streams * n * 1000) / ms, seconds: ms / 1000 } : undefined;
}

export function summarize(timings: RequestTiming[], wall_s: number, streams?: number): ConcurrencyFigures {
  const ttft = timings.filter((t) => t.tokens.length).map((t) => t.tokens[0] - t.start);
  const itl = timings.flatMap((t) => t.tokens.slice(1).map((x, i) => x - t.tokens[i]));
  const tokens = timings.reduce((n, t) => n + t.tokens.length, 0);
  const r = (x: number) => Math.round(x * 10) / 10;
  const decode = streams ? decodeRate(timings, streams) : undefined;
  return {
    requests: timings.length,
    tokens,
    wall_s: r(wall_s),
    aggregate_tok_s: r(tokens / wall_s),
    ...(decode ? { decode_tok_s: r(decode.tok_s), decode_s: r(decode.seconds) } : {}),
    ttft_p50_ms: r(percentile(ttft, 50)),
    ttft_p99_ms: r(percentile(ttft, 99)),
    itl_p50_ms: r(percentile(itl, 50)),
    itl_p99_ms: r(percentile(itl, 99)),
  };
}
