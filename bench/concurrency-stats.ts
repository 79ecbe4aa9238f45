/** Figures of a closed-loop concurrency run: aggregate tokens/s, time to first token and inter-token latency percentiles. */

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

export function summarize(timings: RequestTiming[], wall_s: number): ConcurrencyFigures {
  const ttft = timings.filter((t) => t.tokens.length).map((t) => t.tokens[0] - t.start);
  const itl = timings.flatMap((t) => t.tokens.slice(1).map((x, i) => x - t.tokens[i]));
  const tokens = timings.reduce((n, t) => n + t.tokens.length, 0);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    requests: timings.length,
    tokens,
    wall_s: r(wall_s),
    aggregate_tok_s: r(tokens / wall_s),
    ttft_p50_ms: r(percentile(ttft, 50)),
    ttft_p99_ms: r(percentile(ttft, 99)),
    itl_p50_ms: r(percentile(itl, 50)),
    itl_p99_ms: r(percentile(itl, 99)),
  };
}
