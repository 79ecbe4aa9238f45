// The engine benches' targets from given figures (no timing here): each target is judged on the
// medians over the rounds, says its round-by-round ratios, points at the Node prefill bound only
// where it is missed, and says "not measured" where an engine failed.
import { describe, expect, it } from "vitest";
import { atLeastPeer, footprintTargets, nodeSpeedTargets, samplingCost, workerSpeedTargets, type EngineRounds } from "../../bench/engine-targets";
import { targetLines } from "../../bench/targets";

const llama1: EngineRounds = { prefill_tok_s: [105, 107, 110], decode_tok_s: [25.4, 25.5, 25.2] };
const ours1: EngineRounds = { prefill_tok_s: [57.8, 57.3, 55.4], decode_tok_s: [27.3, 27.0, 25.5], decode_sampled_tok_s: [27.1, 26.9, 25.6] };

describe("engine bench targets", () => {
  it("judges a ratio on the medians, not on one round, and lists the rounds", () => {
    // Round ratios 1.07, 1.06, 1.01: the median of ours (27.0) over the median of llama.cpp's (25.4) is 1.063.
    const t = atLeastPeer("decode ≥ 1.05×", { ours: ours1.decode_tok_s, peer: llama1.decode_tok_s }, 1.05);
    expect(t.pass).toBe(true);
    expect(t.measured).toBe("27.0 / 25.4 tok/s = 1.06× (by round 1.07, 1.06, 1.01)");
    // The same rounds against a 1.07× target fail.
    expect(atLeastPeer("decode ≥ 1.07×", { ours: ours1.decode_tok_s, peer: llama1.decode_tok_s }, 1.07).pass).toBe(false);
  });

  it("one thread and N threads: every target of the run, the Node prefill bound named only where prefill misses", () => {
    const t = nodeSpeedTargets({
      one: { ours: ours1, llama: llama1 },
      many: { threads: 2, ours: { prefill_tok_s: [108.2, 106.1, 104.1], decode_tok_s: [40, 40, 39] }, llama: { prefill_tok_s: [206.8, 207, 205], decode_tok_s: [30, 30, 30] } },
    });
    expect(t.map((x) => [x.what, x.pass])).toEqual([
      ["Node, 1 thread: prefill ≥ 0.6× llama.cpp", false],
      ["Node, 1 thread: decode ≥ 1.05× llama.cpp", true],
      ["Node, 1 thread: sampling with the model card's settings (temperature 0.7, top_p 0.95) ≤ 3% of a decode step", true],
      ["Node, 2 threads: decode ≥ 1.0× llama.cpp at 2 threads", true],
      ["Node, 2 threads: prefill ≥ 0.6× llama.cpp at 2 threads", false],
      ["Node, 2 threads: prefill ≥ 1.8× our own one-thread prefill", true],
    ]);
    expect(t[0].measured).toContain("What bounds prefill in Node 20");
    expect(t[1].measured).not.toContain("bounds");
    expect(t[5].measured).toBe("106.1 / 57.3 tok/s = 1.85× (by round 1.87, 1.85, 1.88)");
    const passing = nodeSpeedTargets({ one: { ours: { ...ours1, prefill_tok_s: [70, 70, 70] }, llama: llama1 } });
    expect(passing[0].pass).toBe(true);
    expect(passing[0].measured).not.toContain("bounds");
    expect(passing).toHaveLength(3); // one thread only: no N-thread targets
  });

  it("a failed engine: its targets say not measured, and the block marks them —", () => {
    const t = nodeSpeedTargets({ one: { ours: ours1, llama: undefined }, many: { threads: 2, ours: undefined, llama: llama1 } });
    expect(t.filter((x) => x.pass === undefined).map((x) => x.what)).toEqual([
      "Node, 1 thread: prefill ≥ 0.6× llama.cpp",
      "Node, 1 thread: decode ≥ 1.05× llama.cpp",
      "Node, 2 threads: decode ≥ 1.0× llama.cpp at 2 threads",
      "Node, 2 threads: prefill ≥ 0.6× llama.cpp at 2 threads",
      "Node, 2 threads: prefill ≥ 1.8× our own one-thread prefill",
    ]);
    expect(targetLines(t)).toContain("  — Node, 1 thread: decode ≥ 1.05× llama.cpp: not measured in this run (an engine failed or did not run)");
    expect(targetLines(t)[0]).toBe("targets (this run's numbers):");
  });

  it("sampling cost: the extra time a token over the greedy step, as a share of that step", () => {
    // 25 tok/s greedy = 40 ms a step; 24 tok/s sampled = 41.67 ms: 1.67 ms, 4.2% > 3%.
    const miss = samplingCost("s", [25], [24], 0.03);
    expect(miss.pass).toBe(false);
    expect(miss.measured).toBe("24.0 tok/s sampled against 25.0 greedy: 1.67 ms more a token, 4.2% of a 40.0 ms step");
    expect(samplingCost("s", [25], [24.5], 0.03).pass).toBe(true); // 0.82 ms, 2.0%
    expect(samplingCost("s", [25], undefined, 0.03).pass).toBeUndefined();
    expect(samplingCost("s", [25, 25, 25], [NaN, NaN, NaN], 0.03).pass).toBeUndefined(); // an engine without a sampled row
  });

  it("the Worker: prefill from its milliseconds for the prompt, against llama.cpp's tok/s", () => {
    // 128 tokens in 2000 ms = 64 tok/s against llama.cpp's median 107: 0.598×, under 0.6×, and
    // printed with a third decimal, since 0.60× beside ✗ would read as a pass.
    const t = workerSpeedTargets(128, { prefill_ms: [2000, 2100, 1950], decode_tok_s: [26, 27, 27.5] }, llama1, 0.57);
    expect(t[0].measured).toBe("64.0 / 107.0 tok/s = 0.598× (by round 0.61, 0.57, 0.60)");
    expect(t[0].pass).toBe(false);
    const faster = workerSpeedTargets(128, { prefill_ms: [1900, 2000, 1950], decode_tok_s: [26] }, llama1, 1.2);
    expect(faster[0].measured).toBe("65.6 / 107.0 tok/s = 0.61× (by round 0.64, 0.60, 0.60)");
    expect(faster[0].pass).toBe(true);
    expect(t[1].pass).toBe(true); // 27.0 / 25.4 = 1.063
    // The sampler alone: 0.57 ms against a step of 1000 / 27 = 37.0 ms is 1.5%; 1.2 ms against 1000 / 26 = 38.5 ms is 3.1%.
    expect(t[2]).toEqual({ what: "Worker (workerd): sampling with the model card's settings ≤ 3% of a decode step", measured: "0.57 ms a token (the sampler alone in workerd, flat logits) = 1.5% of a 37.0 ms decode step", pass: true });
    expect(faster[2].pass).toBe(false);
    expect(t[0].measured).not.toContain("Node 20");
    expect(workerSpeedTargets(128, undefined, llama1).every((x) => x.pass === undefined)).toBe(true);
  });

  it("footprint: load against the file read, RSS against weights + KV + 64 MB", () => {
    const [load, rss] = footprintTargets({ load_s: 0.45, rss_mb: 943 }, 0.08, { weightsMB: 887, kvMB: 36 });
    expect(load.pass).toBe(false);
    expect(load.measured).toMatch(/^0\.45 s = 5\.63× 0\.08 s/);
    expect(rss).toEqual({ what: "Node, 1 thread: RSS above Node's own baseline ≤ weights + KV + 64 MB", measured: "943 MB against 887 + 36 + 64 = 987 MB", pass: true });
    expect(footprintTargets({ load_s: 0.1, rss_mb: 1000 }, 0.08, { weightsMB: 887, kvMB: 36 }).map((t) => t.pass)).toEqual([true, false]);
  });
});
