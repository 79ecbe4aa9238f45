// The concurrency bench's report from given figures (no timing here): a run limited to the
// prefix-reuse or the short-request case reports that case and its targets only, and a full run
// still has its table.
import { describe, expect, it } from "vitest";
import { report, targets, type ConcurrencyRun } from "../../bench/concurrency-report";

const prefix = { first_ms: 1000, second_ms: 150, first_tokens: 520, second_tokens: 572, cached: 544 };
const base: ConcurrencyRun = { model: "m.gguf", shardedPreset: "full2l", requests: 100, prompt: 16, decode: 32, maxBatch: 8, maxBatchTokens: 64, llama: [], hosts: [] };
const figures = { requests: 4, tokens: 128, wall_s: 2, aggregate_tok_s: 64, decode_tok_s: 80, decode_s: 1.2, ttft_p50_ms: 10, ttft_p99_ms: 20, itl_p50_ms: 30, itl_p99_ms: 40 };

describe("concurrency report", () => {
  it("--only prefix: only the prefix-reuse section and its target, no levels table, nothing 'not measured'", () => {
    const run: ConcurrencyRun = { ...base, only: "prefix", hosts: [{ host: "node", detail: "wasm (simd kernels)", levels: [], prefix }] };
    const text = report(run).join("\n");
    expect(text).not.toContain("| host | streams |");
    expect(text).not.toContain("requests per level");
    expect(text).not.toContain("not measured");
    expect(text).toContain("prefix reuse (Node (edgelm serve, 1 thread)), token ids with the reply's own ids");
    const t = targets(run);
    expect(t.map((x) => x.what)).toEqual(["Node, second chat turn's prefill ≤ 20% of the first's"]);
    expect(t[0].pass).toBe(true);
    expect(text).toContain("✓ Node, second chat turn's prefill ≤ 20% of the first's: 150 / 1000 ms = 15%");
  });

  it("--only prefix whose node host failed: the one target says it was not measured", () => {
    const run: ConcurrencyRun = { ...base, only: "prefix", hosts: [{ host: "node", detail: "", levels: [], error: "boom" }] };
    expect(targets(run)).toEqual([{ what: "Node, second chat turn's prefill ≤ 20% of the first's", measured: "not measured in this run (needs the node host)" }]);
    expect(report(run).join("\n")).toContain("FAILED Node (edgelm serve, 1 thread): boom");
  });

  it("--only short: only the short-request targets, one per host, no levels table, nothing 'not measured'", () => {
    const short = { alone_ms: 400, step_ms: 150, bound_ms: 700, ttft_ms: [500, 650, 720], within: 2 };
    const run: ConcurrencyRun = { ...base, only: "short", hosts: [{ host: "node", detail: "d", levels: [], short }, { host: "worker", detail: "d", levels: [], short: { ...short, ttft_ms: [500], within: 1 } }] };
    const text = report(run).join("\n");
    expect(text).not.toContain("| host | streams |");
    expect(text).not.toContain("not measured");
    expect(text).toContain("the short-request case only (--only short)");
    const t = targets(run);
    expect(t).toHaveLength(2);
    expect(t.map((x) => x.pass)).toEqual([false, true]);
    expect(t[0].measured).toBe("2/3 within 700 ms (alone 400 + 2 × step 150); worst 720 ms");
  });

  it("the Node targets are read on aggregate decode, with the served rate (prompts included) beside it", () => {
    const lvl = (streams: number, decode: number, served: number) => ({ streams, figures: { ...figures, decode_tok_s: decode, aggregate_tok_s: served } });
    const run: ConcurrencyRun = {
      ...base,
      prefill: { tok_s: 50, detail: "d" },
      llama: [lvl(4, 25, 22)],
      hosts: [{ host: "node", detail: "d", levels: [lvl(1, 28, 22), lvl(4, 43, 29), lvl(8, 36, 28)] }],
    };
    const t = Object.fromEntries(targets(run).map((x) => [x.what, x]));
    // Ceiling 0.857 × 50 = 42.85: decode 43 at four is ≥ 0.75 × it (served 29 would not be); 36 at eight is 0.84 × it.
    expect(t["Node, 4 streams: aggregate decode ≥ 0.75 × ceiling"]).toMatchObject({ pass: true, measured: "43.0 tok/s = 1.00 × ceiling 42.9 (0.857 × prefill 50.0 tok/s); served, prompts included: 29.0 tok/s" });
    expect(t["Node, 8 streams: aggregate decode ≥ 0.85 × ceiling"].pass).toBe(false);
    expect(t["Node, 4 streams ≥ 1.5 × its own single stream (aggregate decode)"]).toMatchObject({ pass: true, measured: "43.0 / 28.0 tok/s = 1.54×; served 1.32×" });
    expect(t["Node, 4 streams ≥ 1.3 × llama.cpp's aggregate decode at 4 sequences"]).toMatchObject({ pass: true, measured: "43.0 / 25.0 tok/s = 1.72×; served 1.32×" });
    // A level with no pure decode time (decode_tok_s absent) is not measured, not judged on the served rate.
    const { decode_tok_s: _, ...noDecode } = lvl(4, 43, 29).figures;
    const none: ConcurrencyRun = { ...run, hosts: [{ host: "node", detail: "d", levels: [lvl(1, 28, 22), { streams: 4, figures: noDecode }] }] };
    expect(targets(none).find((x) => x.what.startsWith("Node, 4 streams ≥ 1.5"))!.pass).toBeUndefined();
  });

  it("a full run keeps the levels table and lists every target", () => {
    const run: ConcurrencyRun = { ...base, hosts: [{ host: "node", detail: "d", levels: [{ streams: 1, figures }], prefix }] };
    const text = report(run).join("\n");
    expect(text).toContain("| host | streams |");
    expect(text).toContain("| Node (edgelm serve, 1 thread) | 1 | 80.0 | 1.00× | — | — | 64.0 |");
    expect(targets(run).length).toBeGreaterThan(1);
    expect(text).toContain("not measured in this run (needs the node host at 4 streams");
  });
});
