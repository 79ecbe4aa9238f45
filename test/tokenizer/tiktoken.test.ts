/** Property test: ours against tiktoken 1.0.22 (an independent Rust implementation) on random text. */
import { afterAll, describe, expect, it } from "vitest";
import { Tokenizer } from "../../src/tokenizer/node";
import { tiktokenArcade } from "./oracle";
import { randomCodePoints, randomText, rng } from "./random-text";

const tok = Tokenizer.arcade100k();
const peer = tiktokenArcade();
afterAll(() => peer.free());

function firstMismatch(strings: string[], allowSpecial: boolean): { s: string; ours: number[]; theirs: number[] } | undefined {
  for (const s of strings) {
    const ours = tok.encode(s, { allowSpecial });
    const theirs = Array.from(allowSpecial ? peer.encode(s, "all", []) : peer.encode_ordinary(s));
    if (ours.length !== theirs.length || ours.some((v, i) => v !== theirs[i])) return { s, ours, theirs };
  }
  return undefined;
}

describe("agreement with tiktoken (Arcade regex, cl100k ranks)", () => {
  it("on 4000 random mixed-script strings, specials as text", () => {
    const r = rng(1);
    const strings = Array.from({ length: 4000 }, () => randomText(r));
    expect(firstMismatch(strings, false)).toBeUndefined();
  });

  it("on 1500 random strings with specials allowed", () => {
    const r = rng(2);
    const strings = Array.from({ length: 1500 }, () => randomText(r));
    expect(firstMismatch(strings, true)).toBeUndefined();
  });

  it("on 1500 strings of random code points (all planes, unassigned included)", () => {
    const r = rng(3);
    const strings = Array.from({ length: 1500 }, () => randomCodePoints(r, 1 + Math.floor(r() * 30)));
    const bad = firstMismatch(strings, false);
    expect(bad && { s: [...bad.s].map((c) => c.codePointAt(0)!.toString(16)), ours: bad.ours, theirs: bad.theirs }).toBeUndefined();
  });

  it("on long runs that take the heap path (4 KB)", () => {
    const strings = ["a", " ", "\n", "ab", "!", "é", "\u0301", " the", "0"].map((c) => c.repeat(Math.ceil(4096 / c.length)));
    strings.push("x" + " ".repeat(3000) + "y", "word".repeat(1000) + " end");
    expect(firstMismatch(strings, false)).toBeUndefined();
  });
});
