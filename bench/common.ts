/** What the benches share: the synthetic 1.6B model file, the prompt, and one engine per child process. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { WasmSequence } from "../src/engine/kv-cache";
import type { WasmEngine } from "../src/engine/wasm-engine";
import { percentiles } from "../src/generate/eval-stats";
import { writeSynthGGUF } from "../weights-tools/synth";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The synthetic Stable LM 2 1.6B-shaped Q4_0 GGUF (made once, ~35 s, kept under models/bench/). */
export async function benchModel(): Promise<string> {
  const path = join(root, "models", "bench", "synth-1_6b-q4_0-seed0.gguf");
  if (existsSync(path)) return path;
  mkdirSync(dirname(path), { recursive: true });
  process.stderr.write(`generating ${path} (synthetic 1.6B, Q4_0; ~35 s, once) …\n`);
  await writeSynthGGUF("1_6b", path, "q4_0", 0, { onWarning: () => {} });
  return path;
}

/** The same pseudo-random prompt for every engine (ids inside the Arcade100k text range). */
export function promptTokens(n: number): number[] {
  let a = 12345;
  return Array.from({ length: n }, () => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a % 100000;
  });
}

/** n sequences holding the same `length`-token prompt: the first computes it, the others take its cached blocks. */
export function promptedSequences(e: WasmEngine, length: number, n: number): WasmSequence[] {
  const prompt = promptTokens(length);
  const seqs = Array.from({ length: n }, () => e.newSequence());
  for (const s of seqs) {
    const held = e.reusePrefix(s, prompt);
    e.forward(s, prompt.slice(held), held);
  }
  return seqs;
}

export interface EngineResult {
  engine: string;
  /** Where the engine runs ("Node": in-process in a Node child). */
  host: string;
  threads: number;
  detail: string;
  load_s: number;
  /** The median over the reps (bench/engine-child.ts --reps), as decode_tok_s and decode_sampled_tok_s. */
  prefill_tok_s: number;
  /** The first rep's prefill: in edgelm, the first write to each of its KV pages. */
  prefill_first_tok_s?: number;
  reps?: number;
  decode_tok_s: number;
  /** The same decode again, sampling with temperature 0.7, top_p 0.95 (the model card's settings) instead of argmax. */
  decode_sampled_tok_s?: number;
  /** How the sampled decode sampled. */
  sampled_detail?: string;
  peak_rss_mb: number;
  baseline_rss_mb: number;
}

/** Polls `url`/health until the model serves (200); a failed load, or none within `timeoutMs`, throws with its reason. */
export async function waitReady(url: string, timeoutMs: number): Promise<{ load_ms: number; engine: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${url}/health`).catch(() => undefined);
    const h = res ? ((await res.json().catch(() => ({}))) as { status?: string; load_ms?: number; engine?: string; reason?: string }) : {};
    if (res?.status === 200) return { load_ms: h.load_ms ?? NaN, engine: h.engine ?? "?" };
    if (h.status === "failed") throw new Error(`${url}: loading the model failed: ${h.reason}`);
    if (Date.now() > deadline) throw new Error(`${url}: the model did not load within ${timeoutMs / 1000} s: ${h.reason ?? h.status ?? "no answer"}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs bench/engine-child.ts with `args` in its own process and returns its JSON line (or the error). */
export function engineChild(args: string[], prompt: number, decode: number): EngineResult | { engine: string; error: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "bench/engine-child.ts"), ...args, "--prompt", String(prompt), "--decode", String(decode)], {
    cwd: root,
    encoding: "utf8",
    timeout: 600_000,
    maxBuffer: 16 << 20,
  });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as EngineResult;
  } catch {
    return { engine: args.join(" "), error: childError(r.stderr || r.stdout || `exit ${r.status}`) };
  }
}

/** What a failed child said: its thrown error's line (Node prints the source line and a caret first), else its last lines. */
export function childError(output: string): string {
  const lines = output.trim().split("\n");
  return lines.find((l) => /^[A-Za-z]*Error\b/.test(l)) ?? lines.slice(-3).join(" | ");
}

/** One engine's rounds as one result: the median of each figure over the rounds, the first round's first prefill, the highest peak RSS. */
export function mergeRounds(rs: ReturnType<typeof engineChild>[]): ReturnType<typeof engineChild> {
  const failed = rs.find((r) => "error" in r);
  if (failed) return failed;
  const ok = rs as EngineResult[];
  const med = (k: "load_s" | "prefill_tok_s" | "decode_tok_s" | "decode_sampled_tok_s") => percentiles(ok.map((r) => r[k] ?? NaN)).median;
  return {
    ...ok[0],
    load_s: med("load_s"),
    prefill_tok_s: med("prefill_tok_s"),
    decode_tok_s: med("decode_tok_s"),
    decode_sampled_tok_s: med("decode_sampled_tok_s"),
    peak_rss_mb: Math.max(...ok.map((r) => r.peak_rss_mb)),
  };
}
