/**
 * A soak's numbers and verdicts: requests by kind and by status, latency percentiles, the server's
 * RSS and engine gauges over time, and the checks the CI test asserts, each with the figures it
 * was decided on. The bounds live here so the command and the test judge a run the same way.
 */
import { FAULTS, type End, type Outcome } from "./exchange";
import type { Gauges } from "./monitor";
import { IDLE_GAUGES, isIdle, type SoakRun } from "./run";

const MiB = 2 ** 20;

export const BOUNDS = {
  /** End RSS may exceed warm-up RSS by this fraction or this many bytes, whichever is larger. */
  rssGrowthFraction: 0.05,
  rssGrowthBytes: 16 * MiB,
  /** Least-squares RSS slope after warm-up, bytes per minute. */
  rssSlopePerMin: 1 * MiB,
  /** Every /health probe answered 200 within this. */
  healthMs: 2_000,
  /** The window at either end of the measured span whose median RSS is "warm-up" and "end". */
  rssWindowMs: 5_000,
} as const;

export interface Percentiles {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface Summary {
  target: string;
  startedAt: string;
  options: SoakRun["options"];
  requests: number;
  byStatus: Record<string, number>;
  byEnd: Partial<Record<End, number>>;
  /** kind → "status end[ code]" → count. */
  byKind: Record<string, Record<string, number>>;
  ttftMs: Percentiles;
  itlMs: Percentiles;
  /** Non-streamed completions that finished, end to end. */
  latencyMs: Percentiles;
  tokens: number;
  bursts: number;
  queueFull: number;
  rss: { warmupBytes?: number; endBytes?: number; maxBytes: number; slopeBytesPerMin?: number; slopeSeBytesPerMin?: number; samplesAfterWarmup: number };
  kvFilledMs?: number;
  warmupEndMs: number;
  trafficEndMs: number;
  health: { probes: number; failures: number; p99Ms: number; maxMs: number };
  settled: { ms: number; gauges?: Gauges; health?: unknown };
  /** Every 10 s: seconds, RSS MiB, and the engine gauges. */
  series: { t: number; rssMiB: number; running?: number; waiting?: number; live?: number; kvUsed?: number; kvCached?: number; kvFree?: number }[];
  /** Every sample: seconds, RSS MiB (the trend checks' raw data). */
  rssSamples: [number, number][];
  faults: Outcome[];
  checks: Check[];
  failure?: string;
}

export function percentiles(xs: number[]): Percentiles {
  if (xs.length === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const s = [...xs].sort((a, b) => a - b);
  // Nearest rank: a value that occurred, never an interpolation between two.
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1] };
}

/** Least-squares slope of y over x. */
export function slope(points: { x: number; y: number }[]): number {
  return fit(points).slope;
}

/** Least-squares slope and its standard error (how far noise alone moves it). */
export function fit(points: { x: number; y: number }[]): { slope: number; se: number } {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  const k = num / den;
  let resid = 0;
  for (const p of points) resid += (p.y - my - k * (p.x - mx)) ** 2;
  return { slope: k, se: n > 2 ? Math.sqrt(resid / (n - 2) / den) : Infinity };
}

/**
 * The series with its largest rise between two samples taken out (every later sample lowered by
 * it). A server that touches new memory once (V8 growing a space, workerd a buffer) rises by a step
 * of a few MiB at some moment and is flat after; over a two-minute window that one step reads as
 * more than 1 MiB/min. A leak rises a little at every sample, and losing one sample's rise leaves
 * its slope: over an hour nothing changes, over two minutes at most the largest single rise.
 */
export function withoutLargestStep(points: { x: number; y: number }[]): { x: number; y: number }[] {
  let at = -1;
  let step = 0;
  for (let i = 1; i < points.length; i++) {
    const rise = points[i].y - points[i - 1].y;
    if (rise > step) [at, step] = [i, rise];
  }
  return at < 0 ? points : points.map((p, i) => (i >= at ? { x: p.x, y: p.y - step } : p));
}

const median = (xs: number[]) => percentiles(xs).p50;
const count = <K extends string>(m: Partial<Record<K, number>>, k: K) => (m[k] = (m[k] ?? 0) + 1);

export function summarize(run: SoakRun): Summary {
  const byStatus: Record<string, number> = {};
  const byEnd: Partial<Record<End, number>> = {};
  const byKind: Record<string, Record<string, number>> = {};
  const ttft: number[] = [];
  const itl: number[] = [];
  const latency: number[] = [];
  let tokens = 0;
  let queueFull = 0;
  for (const o of run.outcomes) {
    count(byStatus, String(o.status));
    count(byEnd, o.end);
    count((byKind[o.kind] ??= {}), `${o.status} ${o.end}${o.code ? ` ${o.code}` : ""}`);
    if (o.ttftMs !== undefined) ttft.push(o.ttftMs);
    itl.push(...o.itlMs);
    tokens += o.tokens;
    if (!o.stream && o.end === "complete") latency.push(o.durationMs);
    if (o.status === 429 && o.code === "queue_full") queueFull++;
  }

  const measured = run.samples.filter((s) => s.t >= run.warmupEndMs && s.t <= run.trafficEndMs);
  const rss: Summary["rss"] = { maxBytes: Math.max(0, ...run.samples.map((s) => s.rss)), samplesAfterWarmup: measured.length };
  if (measured.length >= 3) {
    const first = measured[0].t;
    const last = measured[measured.length - 1].t;
    const warm = run.samples.filter((s) => s.t >= run.warmupEndMs - BOUNDS.rssWindowMs && s.t <= run.warmupEndMs + 1_000);
    rss.warmupBytes = median((warm.length ? warm : [measured[0]]).map((s) => s.rss));
    rss.endBytes = median(measured.filter((s) => s.t >= last - BOUNDS.rssWindowMs).map((s) => s.rss));
    if (last > first) {
      const f = fit(withoutLargestStep(measured.map((s) => ({ x: s.t / 60_000, y: s.rss }))));
      rss.slopeBytesPerMin = f.slope;
      rss.slopeSeBytesPerMin = f.se;
    }
  }

  const answered = run.probes.filter((p) => p.status === 200);
  const probeMs = run.probes.map((p) => p.ms);
  const health = {
    probes: run.probes.length,
    failures: run.probes.filter((p) => p.status !== 200 || p.ms > BOUNDS.healthMs).length,
    p99Ms: percentiles(probeMs).p99,
    maxMs: Math.max(0, ...probeMs),
  };

  const series: Summary["series"] = [];
  let nextT = 0;
  for (const s of run.samples) {
    if (s.t < nextT) continue;
    nextT = s.t + 10_000;
    const g = s.gauges ?? {};
    series.push({
      t: Math.round(s.t / 1000),
      rssMiB: +(s.rss / MiB).toFixed(1),
      running: g.edgelm_generations_running,
      waiting: g.edgelm_generations_waiting,
      live: g.edgelm_batch_live_sequences,
      kvUsed: g.edgelm_kv_blocks_used,
      kvCached: g.edgelm_kv_blocks_cached,
      kvFree: g.edgelm_kv_blocks_free,
    });
  }

  const faults = run.outcomes.filter((o) => FAULTS.includes(o.end) || !o.expected);
  const summary: Summary = {
    target: run.target,
    startedAt: run.startedAt,
    options: run.options,
    requests: run.outcomes.length,
    byStatus,
    byEnd,
    byKind,
    ttftMs: percentiles(ttft),
    itlMs: percentiles(itl),
    latencyMs: percentiles(latency),
    tokens,
    bursts: run.bursts,
    queueFull,
    rss,
    kvFilledMs: run.kvFilledMs,
    warmupEndMs: run.warmupEndMs,
    trafficEndMs: run.trafficEndMs,
    health,
    settled: run.settled,
    series,
    rssSamples: run.samples.map((x) => [+(x.t / 1000).toFixed(1), +(x.rss / MiB).toFixed(1)]),
    faults: faults.slice(0, 50),
    checks: [],
    failure: run.failure,
  };
  summary.checks = judge(run, summary, answered.length);
  return summary;
}

function judge(run: SoakRun, s: Summary, answered: number): Check[] {
  const checks: Check[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  add("the run completed", !run.failure && s.requests > 0, run.failure ? run.failure.split("\n")[0] : `${s.requests} requests`);

  const cut = s.byEnd.cut ?? 0;
  add(
    "every response complete or cleanly errored",
    FAULTS.every((f) => !s.byEnd[f]),
    FAULTS.map((f) => `${f} ${s.byEnd[f] ?? 0}`).join(", ") + (cut ? ` (streams without [DONE] or an error event: ${cut})` : ""),
  );
  const unexpected = run.outcomes.filter((o) => !o.expected);
  add("statuses only from the expected set", unexpected.length === 0, unexpected.length ? `${unexpected.length} unexpected, e.g. ${unexpected[0].detail}` : `statuses ${Object.keys(s.byStatus).join(", ")}`);

  const g = s.settled.gauges;
  const leak = g ? IDLE_GAUGES.filter((k) => g[k] !== undefined && g[k] !== 0).map((k) => `${k} ${g[k]}`) : [];
  const missing = g ? IDLE_GAUGES.filter((k) => g[k] === undefined && !(k === "edgelm_batch_live_sequences" && run.target === "worker")) : [...IDLE_GAUGES];
  add(
    "no leaked sequences, KV blocks or queue entries after the settle",
    isIdle(g, run.target),
    !g ? "/metrics did not answer after the traffic" : leak.length || missing.length ? [...leak, ...missing.map((k) => `${k} missing`)].join(", ") : `all zero ${(s.settled.ms / 1000).toFixed(1)} s after the traffic stopped`,
  );

  const { warmupBytes: w, endBytes: e, slopeBytesPerMin: k } = s.rss;
  const filled = s.kvFilledMs !== undefined;
  if (!filled || w === undefined || e === undefined || k === undefined) {
    const why = !filled ? "the warm-up never filled the KV cache (kv_blocks_free never reached 0)" : `only ${s.rss.samplesAfterWarmup} RSS samples after the warm-up`;
    add("RSS at the end within the warm-up's + max(5%, 16 MiB)", false, why);
    add("RSS slope after warm-up ≤ 1 MiB/min", false, why);
  } else {
    const allowed = w + Math.max(BOUNDS.rssGrowthFraction * w, BOUNDS.rssGrowthBytes);
    add("RSS at the end within the warm-up's + max(5%, 16 MiB)", e <= allowed, `warm-up ${mib(w)}, end ${mib(e)}, allowed ${mib(allowed)}`);
    // Not significantly above the bound: the slope less two standard errors. A short run's GC
    // sawtooth makes the slope noisy (docs/soak.md); a long run's error is small, and a leak's slope
    // stands out of it.
    const se = s.rss.slopeSeBytesPerMin ?? Infinity;
    add("RSS slope after warm-up ≤ 1 MiB/min", k - 2 * se <= BOUNDS.rssSlopePerMin, `${(k / MiB).toFixed(2)} ± ${(se / MiB).toFixed(2)} MiB/min (one standard error) over ${s.rss.samplesAfterWarmup} samples`);
  }
  add(
    `/health answered every probe within ${BOUNDS.healthMs / 1000} s`,
    s.health.probes > 0 && s.health.failures === 0,
    `${s.health.probes} probes, ${answered} answered 200, ${s.health.failures} late or failed, max ${s.health.maxMs.toFixed(0)} ms`,
  );
  add("bursts reached the queue bound (429 queue_full)", s.queueFull > 0, `${s.queueFull} refused over ${s.bursts} bursts`);
  if (run.target === "serve") {
    const w = run.warnings ?? [];
    add("no process warnings from the server", w.length === 0, w.length ? `${w.length}${w.length === 50 ? "+" : ""}, first: ${w[0]}` : "none");
  }
  return checks;
}

const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
const ms = (x: number) => (Number.isNaN(x) ? "-" : x < 10 ? x.toFixed(2) : x.toFixed(0));

/** The table a person reads at the end of a run. */
export function formatSummary(s: Summary): string {
  const lines: string[] = [];
  const o = s.options;
  lines.push(`soak against ${s.target}: ${o.minutes} min, ${o.concurrency} clients, seed ${o.seed}, queue depth ${o.queueDepth}${s.target === "serve" ? `, max batch ${o.maxBatch}` : ""} (started ${s.startedAt})`);
  lines.push(`requests ${s.requests} (${s.tokens} streamed tokens), bursts ${s.bursts}; traffic ${(s.trafficEndMs / 1000).toFixed(0)} s, KV filled at ${s.kvFilledMs === undefined ? "never" : `${(s.kvFilledMs / 1000).toFixed(1)} s`}, warm-up until ${(s.warmupEndMs / 1000).toFixed(0)} s`);
  lines.push("");
  lines.push(`by status: ${Object.entries(s.byStatus).map(([k, v]) => `${k === "0" ? "none" : k} ${v}`).join(" · ")}`);
  lines.push(`by end:    ${Object.entries(s.byEnd).map(([k, v]) => `${k} ${v}`).join(" · ")}`);
  lines.push("");
  const kinds = Object.keys(s.byKind).sort();
  const w = Math.max(...kinds.map((k) => k.length), 4);
  lines.push(`${"kind".padEnd(w)}  outcomes (status end [code]: count)`);
  for (const k of kinds) {
    const row = Object.entries(s.byKind[k]).sort((a, b) => b[1] - a[1]).map(([x, n]) => `${x}: ${n}`).join(" · ");
    lines.push(`${k.padEnd(w)}  ${row}`);
  }
  lines.push("");
  lines.push(`${"ms".padEnd(18)} ${"n".padStart(7)} ${"p50".padStart(7)} ${"p90".padStart(7)} ${"p99".padStart(7)} ${"max".padStart(7)}`);
  for (const [name, p] of [["TTFT (streams)", s.ttftMs], ["inter-token", s.itlMs], ["non-streamed", s.latencyMs]] as const) {
    lines.push(`${name.padEnd(18)} ${String(p.n).padStart(7)} ${ms(p.p50).padStart(7)} ${ms(p.p90).padStart(7)} ${ms(p.p99).padStart(7)} ${ms(p.max).padStart(7)}`);
  }
  lines.push("");
  lines.push(`/health: ${s.health.probes} probes, p99 ${s.health.p99Ms.toFixed(0)} ms, max ${s.health.maxMs.toFixed(0)} ms, ${s.health.failures} late or failed`);
  lines.push("");
  lines.push(`${"t s".padStart(6)} ${"RSS MiB".padStart(8)} ${"running".padStart(8)} ${"waiting".padStart(8)} ${"live".padStart(5)} ${"kv used".padStart(8)} ${"cached".padStart(7)} ${"free".padStart(6)}`);
  const step = Math.max(1, Math.ceil(s.series.length / 30));
  const rows = s.series.filter((_, i) => i % step === 0 || i === s.series.length - 1);
  const cell = (x: number | undefined, n: number) => (x === undefined ? "-" : String(x)).padStart(n);
  for (const r of rows) {
    lines.push(`${cell(r.t, 6)} ${cell(r.rssMiB, 8)} ${cell(r.running, 8)} ${cell(r.waiting, 8)} ${cell(r.live, 5)} ${cell(r.kvUsed, 8)} ${cell(r.kvCached, 7)} ${cell(r.kvFree, 6)}`);
  }
  const g = s.settled.gauges;
  lines.push(`after the traffic (+${(s.settled.ms / 1000).toFixed(1)} s): ${g ? IDLE_GAUGES.map((k) => `${k.replace("edgelm_", "")} ${g[k] ?? "-"}`).join(", ") : "no /metrics"}`);
  lines.push("");
  for (const c of s.checks) lines.push(`${c.ok ? "PASS" : "FAIL"}  ${c.name}: ${c.detail}`);
  if (s.faults.length) {
    lines.push("");
    lines.push(`faults (first ${Math.min(10, s.faults.length)}):`);
    for (const f of s.faults.slice(0, 10)) lines.push(`  ${f.kind} status ${f.status} ${f.end} at ${(f.startMs / 1000).toFixed(1)} s: ${f.detail ?? ""}`);
  }
  return lines.join("\n");
}
