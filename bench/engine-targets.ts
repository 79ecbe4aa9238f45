/**
 * The targets of `npm run bench` (the engine in Node against llama.cpp: speed, load and memory)
 * and of bench/worker.ts (the Worker in workerd against llama.cpp), judged from the run's own rounds.
 * A ratio is the one the table prints: the median of our rounds over the median of the peer's;
 * the round-by-round ratios follow it, because one round moves the ratios by a few percent,
 * as much as some targets' margins.
 */
import { percentiles } from "../src/generate/eval-stats";
import { f, type Target } from "./targets";

/** One figure, ours and the peer's, round by round; higher is faster (tok/s). Absent: a round failed or the run had no such row. */
export interface Rounds {
  ours: number[];
  peer: number[];
}

const median = (xs: number[]) => percentiles(xs).median;

/** ours ≥ factor × peer, on the medians over the rounds. */
export function atLeastPeer(what: string, r: Rounds | undefined, factor: number, note = ""): Target {
  if (!r || r.ours.length === 0 || r.peer.length === 0) return { what, measured: "not measured in this run (an engine failed or did not run)" };
  const ours = median(r.ours);
  const peer = median(r.peer);
  const byRound = r.ours.length > 1 && r.ours.length === r.peer.length ? ` (by round ${r.ours.map((x, i) => f(x / r.peer[i], 2)).join(", ")})` : "";
  const pass = ours >= factor * peer;
  // A ratio that rounds to the target itself gets a third decimal, so that "0.60× ✗" cannot be printed.
  const shown = f(ours / peer, 2) === f(factor, 2) ? f(ours / peer, 3) : f(ours / peer, 2);
  return { what, measured: `${f(ours)} / ${f(peer)} tok/s = ${shown}×${byRound}${pass ? "" : note}`, pass };
}

/**
 * What sampling adds to a decode step, from the same decode run greedily and sampled (tok/s
 * medians): the extra time per token over a greedy step must be ≤ maxShare of that step.
 */
export function samplingCost(what: string, greedy: number[] | undefined, sampled: number[] | undefined, maxShare: number): Target {
  if (!greedy?.length || !sampled?.length || !Number.isFinite(median(greedy)) || !Number.isFinite(median(sampled))) return { what, measured: "not measured in this run" };
  const step = 1000 / median(greedy);
  const extra = 1000 / median(sampled) - step;
  return { what, measured: `${f(median(sampled))} tok/s sampled against ${f(median(greedy))} greedy: ${f(extra, 2)} ms more a token, ${f((100 * extra) / step)}% of a ${f(step)} ms step`, pass: extra <= maxShare * step };
}

/** A sampler timed alone (ms a token) against the decode step it would follow (ms). */
export function samplerShare(what: string, samplerMs: number | undefined, stepMs: number | undefined, maxShare: number, how: string): Target {
  if (samplerMs === undefined || stepMs === undefined || !Number.isFinite(samplerMs) || !Number.isFinite(stepMs)) return { what, measured: "not measured in this run" };
  return { what, measured: `${f(samplerMs, 2)} ms a token (${how}) = ${f((100 * samplerMs) / stepMs)}% of a ${f(stepMs)} ms decode step`, pass: samplerMs <= maxShare * stepMs };
}

/** One engine's figures in each round of `npm run bench` (bench/common.ts EngineResult, what the targets read of it). */
export interface EngineRounds {
  prefill_tok_s: number[];
  decode_tok_s: number[];
  decode_sampled_tok_s?: number[];
}

export interface NodeSpeedRun {
  /** edgelm's fastest build and llama.cpp, one thread. */
  one: { ours?: EngineRounds; llama?: EngineRounds };
  /** Both at `threads` threads, where the run had them (threads > 1). */
  many?: { threads: number; ours?: EngineRounds; llama?: EngineRounds };
}

const pair = (a: EngineRounds | undefined, b: EngineRounds | undefined, k: "prefill_tok_s" | "decode_tok_s"): Rounds | undefined => (a && b ? { ours: a[k], peer: b[k] } : undefined);

/** Where Node's prefill misses 0.6×, the reader is pointed at the bound, with its numbers. */
const NODE_PREFILL_BOUND = ` — Node 20's V8 has no one-instruction 8-bit dot, which bounds its prefill below this (docs/kernels.md, "What bounds prefill in Node 20, with numbers")`;

/** `npm run bench`'s speed targets: one thread and N threads against llama.cpp at as many, and the sampler's share of a step. */
export function nodeSpeedTargets(run: NodeSpeedRun): Target[] {
  const { ours, llama } = run.one;
  const out = [
    atLeastPeer("Node, 1 thread: prefill ≥ 0.6× llama.cpp", pair(ours, llama, "prefill_tok_s"), 0.6, NODE_PREFILL_BOUND),
    atLeastPeer("Node, 1 thread: decode ≥ 1.05× llama.cpp", pair(ours, llama, "decode_tok_s"), 1.05),
    samplingCost("Node, 1 thread: sampling with the model card's settings (temperature 0.7, top_p 0.95) ≤ 3% of a decode step", ours?.decode_tok_s, ours?.decode_sampled_tok_s, 0.03),
  ];
  if (run.many) {
    const { threads: n, ours: oursN, llama: llamaN } = run.many;
    const own = oursN && ours ? { ours: oursN.prefill_tok_s, peer: ours.prefill_tok_s } : undefined;
    out.push(
      atLeastPeer(`Node, ${n} threads: decode ≥ 1.0× llama.cpp at ${n} threads`, pair(oursN, llamaN, "decode_tok_s"), 1.0),
      atLeastPeer(`Node, ${n} threads: prefill ≥ 0.6× llama.cpp at ${n} threads`, pair(oursN, llamaN, "prefill_tok_s"), 0.6, NODE_PREFILL_BOUND),
      atLeastPeer(`Node, ${n} threads: prefill ≥ 1.8× our own one-thread prefill`, own, 1.8),
    );
  }
  return out;
}

/** The Worker's figures in each round of bench/worker.ts. */
export interface WorkerRounds {
  prefill_ms: number[];
  decode_tok_s: number[];
}

/**
 * bench/worker.ts's targets: the Worker (one isolate, one thread) against llama.cpp at one thread,
 * and the sampler timed alone in workerd (`samplerMs`) against the Worker's decode step: a greedy
 * and a sampled stream differ by a few percent from round to round, more than the sampler costs.
 */
export function workerSpeedTargets(prompt: number, worker: WorkerRounds | undefined, llama: EngineRounds | undefined, samplerMs?: number): Target[] {
  const prefill = worker && { prefill_tok_s: worker.prefill_ms.map((ms) => (prompt * 1000) / ms), decode_tok_s: worker.decode_tok_s };
  return [
    atLeastPeer("Worker (workerd), 1 thread: prefill ≥ 0.6× llama.cpp", pair(prefill, llama, "prefill_tok_s"), 0.6),
    atLeastPeer("Worker (workerd), 1 thread: decode ≥ 1.05× llama.cpp", pair(prefill, llama, "decode_tok_s"), 1.05),
    samplerShare("Worker (workerd): sampling with the model card's settings ≤ 3% of a decode step", samplerMs, worker && 1000 / median(worker.decode_tok_s), 0.03, "the sampler alone in workerd, flat logits"),
  ];
}

/** The engine's footprint, one thread: load against reading the file, and RSS against what it holds. */
export function footprintTargets(r: { load_s: number; rss_mb: number }, fileRead_s: number, budget: { weightsMB: number; kvMB: number }): Target[] {
  const rssMax = budget.weightsMB + budget.kvMB + 64;
  return [
    {
      what: "Node, 1 thread: load ≤ 1.5× reading the file",
      measured: `${f(r.load_s, 2)} s = ${f(r.load_s / fileRead_s, 2)}× ${f(fileRead_s, 2)} s (the read: page cache warm, into one reused buffer; the load also fills fresh WASM memory, repacks the weights and self-tests the kernels)`,
      pass: r.load_s <= 1.5 * fileRead_s,
    },
    {
      what: "Node, 1 thread: RSS above Node's own baseline ≤ weights + KV + 64 MB",
      measured: `${f(r.rss_mb, 0)} MB against ${f(budget.weightsMB, 0)} + ${f(budget.kvMB, 0)} + 64 = ${f(rssMax, 0)} MB`,
      pass: r.rss_mb <= rssMax,
    },
  ];
}
