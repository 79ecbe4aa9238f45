import { beforeAll, describe, expect, it } from "vitest";
import type { ServedModel } from "../../src/api/deps";
import { generate, type GenerateEvent, type GenerateOptions } from "../../src/generate/generator";
import type { Engine } from "../../src/model/engine";
import { tinyModel } from "./helpers";

let m: ServedModel;
beforeAll(async () => {
  m = await tinyModel();
});

async function collect(opts: GenerateOptions, engine: Engine = m.engine): Promise<GenerateEvent[]> {
  const out: GenerateEvent[] = [];
  for await (const ev of generate(engine, m.tokenizer, opts)) out.push(ev);
  return out;
}

const textOf = (evs: GenerateEvent[]) => evs.map((e) => (e.type === "token" ? e.text : "")).join("");
const idsOf = (evs: GenerateEvent[]) => evs.flatMap((e) => (e.type === "token" ? [e.id] : []));

/** Counts forward calls, to see where an abort stopped the work. */
function countingEngine(inner: Engine): Engine & { calls: number } {
  const e = {
    name: inner.name,
    config: inner.config,
    calls: 0,
    newSequence: () => inner.newSequence(),
    forward: (seq: unknown, tokens: number[], startPos?: number) => {
      e.calls++;
      return inner.forward(seq, tokens, startPos);
    },
  };
  return e;
}

const greedy = { temperature: 0 };

describe("generate()", () => {
  it("yields one token event per token, then done with usage and finish_reason length", async () => {
    const prompt = m.tokenizer.encode("The quick brown fox");
    const evs = await collect({ prompt, maxTokens: 6, sampling: greedy, stopTokenIds: [] });
    expect(evs.map((e) => e.type)).toEqual([...Array(6).fill("token"), "done"]);
    expect(evs.at(-1)).toEqual({ type: "done", finishReason: "length", usage: { prompt_tokens: prompt.length, completion_tokens: 6 } });
    // The streamed text is exactly the detokenized ids: nothing lost or doubled by the hold-backs.
    expect(textOf(evs)).toBe(m.tokenizer.decode(idsOf(evs), { skipSpecial: true }));
  });

  it("is reproducible for a seed and differs across seeds", async () => {
    const prompt = m.tokenizer.encode("Once upon a time");
    const a = idsOf(await collect({ prompt, maxTokens: 6, seed: 7 }));
    const b = idsOf(await collect({ prompt, maxTokens: 6, seed: 7 }));
    const c = idsOf(await collect({ prompt, maxTokens: 6, seed: 8 }));
    expect(a).toEqual(b);
    expect(c).not.toEqual(a);
  });

  it("cuts the output before a stop string that spans tokens, and never emits it", async () => {
    const prompt = m.tokenizer.encode("Hello");
    const free = await collect({ prompt, maxTokens: 12, sampling: greedy, stopTokenIds: [] });
    const full = textOf(free);
    const ids = idsOf(free);
    // A stop string that straddles the boundary between tokens 3 and 4.
    const before = m.tokenizer.decode(ids.slice(0, 3));
    const stop = full.slice(before.length - 2, before.length + 2);
    expect(stop).toHaveLength(4);
    const evs = await collect({ prompt, maxTokens: 12, sampling: greedy, stopTokenIds: [], stop: [stop] });
    const text = textOf(evs);
    expect(text).toBe(full.slice(0, full.indexOf(stop)));
    expect(text).not.toContain(stop);
    expect(evs.at(-1)).toMatchObject({ type: "done", finishReason: "stop", stop: { kind: "string", value: stop } });
  });

  it("ends at a stop token id without emitting its text", async () => {
    const prompt = m.tokenizer.encode("Hello");
    const free = idsOf(await collect({ prompt, maxTokens: 5, sampling: greedy, stopTokenIds: [] }));
    const evs = await collect({ prompt, maxTokens: 5, sampling: greedy, stopTokenIds: [free[2]] });
    expect(idsOf(evs)).toEqual(free.slice(0, 3));
    expect(textOf(evs)).toBe(m.tokenizer.decode(free.slice(0, 2)));
    expect(evs.at(-1)).toMatchObject({ finishReason: "stop", stop: { kind: "token", id: free[2] }, usage: { completion_tokens: 3 } });
  });

  it("reports logprobs: the greedy token is the top alternative, and probabilities are sane", async () => {
    const evs = await collect({ prompt: m.tokenizer.encode("Hi"), maxTokens: 3, sampling: greedy, logprobs: 3 });
    for (const ev of evs) {
      if (ev.type !== "token") continue;
      expect(ev.topLogprobs).toHaveLength(3);
      expect(ev.topLogprobs![0].id).toBe(ev.id);
      expect(ev.logprob).toBeCloseTo(ev.topLogprobs![0].logprob, 10);
      expect(ev.logprob!).toBeLessThan(0);
      const lps = ev.topLogprobs!.map((t) => t.logprob);
      expect([...lps].sort((a, b) => b - a)).toEqual(lps);
      expect(ev.token).toBe(m.tokenizer.decode([ev.id]));
    }
  });

  it("stops before prefill when the signal is already aborted", async () => {
    const engine = countingEngine(m.engine);
    const ac = new AbortController();
    ac.abort();
    await expect(collect({ prompt: [1, 2, 3], maxTokens: 5, signal: ac.signal }, engine)).rejects.toMatchObject({ name: "AbortError" });
    expect(engine.calls).toBe(0);
  });

  it("stops between tokens when aborted mid-generation: no further forward passes", async () => {
    const engine = countingEngine(m.engine);
    const ac = new AbortController();
    const seen: number[] = [];
    const run = (async () => {
      for await (const ev of generate(engine, m.tokenizer, { prompt: [1, 2, 3], maxTokens: 1000, sampling: greedy, signal: ac.signal, stopTokenIds: [] })) {
        if (ev.type === "token") seen.push(ev.id);
        if (seen.length === 2) ac.abort();
      }
    })();
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
    expect(seen).toHaveLength(2);
    // Prefill + one decode (the one that produced the second token's logits).
    expect(engine.calls).toBe(2);
  });

  it("refuses bad calls instead of running off the end of the context", async () => {
    await expect(collect({ prompt: [], maxTokens: 1 })).rejects.toThrow(/empty/);
    await expect(collect({ prompt: [m.engine.config.vocabSize], maxTokens: 1 })).rejects.toThrow(/outside the vocabulary/);
    await expect(collect({ prompt: [1], maxTokens: m.engine.config.contextLength })).rejects.toThrow(/context length/);
  });
});
