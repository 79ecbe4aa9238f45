// The concurrency bench's aggregate decode (decodeRate) from hand-made client clocks, where the
// answer is known: steps of all streams every `step` ms, a prompt step being longer.
import { describe, expect, it } from "vitest";
import { decodeRate, summarize, type RequestTiming } from "../../bench/concurrency-stats";

/** A request sent at `start` whose tokens arrive at the given times. */
const req = (start: number, tokens: number[]): RequestTiming => ({ start, tokens });
const steps = (from: number, n: number, step: number) => Array.from({ length: n }, (_, i) => from + i * step);

describe("aggregate decode from the clients' clocks", () => {
  it("one stream: its inter-token intervals only, the prompt's time left out", () => {
    // Prompt 0..400 ms, then a token every 50 ms.
    const r = decodeRate([req(0, steps(400, 11, 50))], 1)!;
    expect(r.tok_s).toBeCloseTo(20, 6);
    expect(r.seconds).toBeCloseTo(0.5, 6);
  });

  it("two streams: a step carrying the other's prompt is left out, and so is the time one stream is between requests", () => {
    // A decodes from 100 ms, a token every 100 ms (two rows a step), until 1100.
    const a = req(0, steps(100, 11, 100));
    // B is sent at 40 and its prompt rides the step that ends at 100 ms... then decodes with A until 1100.
    const b = req(40, steps(100, 11, 100));
    // C: B's client sends again at 1130, its prompt makes a 300 ms step (1100 → 1400) for A's next request D too.
    const c = req(1130, steps(1400, 6, 100));
    const d = req(1120, steps(1400, 6, 100));
    const r = decodeRate([a, b, c, d], 2)!;
    // Pure: 100..1100 (10 gaps each for A and B) and 1400..1900 (5 each): 30 gaps of 100 ms.
    expect(r.tok_s).toBeCloseTo(20, 6);
    expect(r.seconds).toBeCloseTo(3, 6);
  });

  it("a gap during which a third request waits for its first token is not decode", () => {
    const a = req(0, [100, 200, 700, 800]);
    const b = req(0, [100, 200, 700, 800]);
    // A prompt in flight from 250 to 700: the gaps 200 → 700 are out, 100 → 200 and 700 → 800 are in.
    const c = req(250, [700]);
    const r = decodeRate([a, b, c], 2)!;
    expect(r.seconds).toBeCloseTo(0.4, 6);
    expect(r.tok_s).toBeCloseTo(20, 6);
  });

  it("fewer streams decoding than the level's (the tail of a run) is not decode; no pure time gives none", () => {
    expect(decodeRate([req(0, steps(100, 5, 50))], 2)).toBeUndefined();
    expect(decodeRate([req(0, [100])], 1)).toBeUndefined();
  });

  it("summarize carries it only when told the level's streams", () => {
    const t = [req(0, steps(400, 11, 50))];
    expect(summarize(t, 1).decode_tok_s).toBeUndefined();
    expect(summarize(t, 1, 1)).toMatchObject({ decode_tok_s: 20, decode_s: 0.5, aggregate_tok_s: 11 });
  });
});
