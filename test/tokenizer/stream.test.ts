import { describe, expect, it } from "vitest";
import { StreamDetokenizer, Tokenizer, type StreamOptions } from "../../src/tokenizer/node";
import { randomText, rng } from "./random-text";
import { wellFormed } from "../../src/tokenizer/binary";

const tok = Tokenizer.arcade100k();

/** Feeds ids one by one; returns the emitted pieces, their concatenation and the stop. */
function run(ids: number[], opts: StreamOptions = {}) {
  const d = new StreamDetokenizer(tok, opts);
  const pieces: string[] = [];
  let stop;
  for (const id of ids) {
    const ev = d.push(id);
    pieces.push(ev.text);
    if (ev.stop) {
      stop = ev.stop;
      break;
    }
  }
  if (!stop) pieces.push(d.flush().text);
  return { pieces, text: pieces.join(""), stop };
}

describe("StreamDetokenizer", () => {
  it("emits only whole characters: an emoji split over three tokens arrives once, complete", () => {
    const ids = tok.encode("a🚀b");
    expect(ids.length).toBeGreaterThanOrEqual(4);
    const { pieces, text } = run(ids);
    expect(text).toBe("a🚀b");
    expect(pieces.some((p) => p.includes("\ufffd"))).toBe(false);
    expect(pieces).toContain("🚀");
  });

  it("concatenates to decode(ids) on random text, including invalid byte runs", () => {
    const r = rng(51);
    for (let i = 0; i < 400; i++) {
      const ids = tok.encode(randomText(r));
      // Drop a random id to create broken UTF-8 sometimes.
      if (ids.length > 2 && r() < 0.3) ids.splice(Math.floor(r() * ids.length), 1);
      const { pieces, text } = run(ids, { skipSpecial: false });
      expect(text).toBe(tok.decode(ids));
      for (const p of pieces) expect(wellFormed(p)).toBe(p);
    }
  });

  it("holds back a possible stop-string start and releases it once ruled out", () => {
    const d = new StreamDetokenizer(tok, { stop: ["\nUser:"] });
    expect(d.push(tok.encode("Hi")[0]).text).toBe("Hi");
    expect(d.push(198).text).toBe(""); // "\n" might start "\nUser:"
    const ev = d.push(tok.encode("Bob")[0]);
    expect(ev.text).toBe("\nBob");
    expect(ev.stop).toBeUndefined();
  });

  it("reports a stop string split across tokens and never emits it", () => {
    const ids = tok.encode("The answer is 42.\nUser: next question");
    const { text, stop } = run(ids, { stop: ["\nUser:"] });
    expect(text).toBe("The answer is 42.");
    expect(stop).toEqual({ kind: "string", value: "\nUser:" });
  });

  it("cuts at the earliest of several stops, even inside one token", () => {
    const { text, stop } = run(tok.encode("alpha beta gamma"), { stop: ["gamma", "ta g", "zzz"] });
    expect(text).toBe("alpha be");
    expect(stop).toEqual({ kind: "string", value: "ta g" });
  });

  it("flushes held text at the end when no stop matched", () => {
    const { pieces, text, stop } = run(tok.encode("wait for it: Us"), { stop: ["Use"] });
    expect(text).toBe("wait for it: Us");
    expect(stop).toBeUndefined();
    expect(pieces.at(-1)).toBe("Us");
  });

  it("stops on a stop token, releasing held text, and hides special tokens by default", () => {
    const ids = [...tok.encode("done\n"), 100278, ...tok.encode(" more"), 100257, ...tok.encode("after")];
    const { text, stop } = run(ids, { stop: ["\n\n"], stopTokenIds: [100257] });
    expect(text).toBe("done\n more");
    expect(stop).toEqual({ kind: "token", id: 100257 });
    expect(run([100278, 9906], { skipSpecial: false }).text).toBe("<|im_end|>Hello");
  });

  it("refuses pushes after the stop and bad ids", () => {
    const d = new StreamDetokenizer(tok, { stopTokenIds: [100257] });
    d.push(100257);
    expect(d.stopped).toBe(true);
    expect(() => d.push(9906)).toThrow(/after the stream ended/);
    expect(() => new StreamDetokenizer(tok).push(100352)).toThrow(/out of range/);
  });

  it("turns an unfinished character at the end into U+FFFD on flush", () => {
    const rocket = tok.encode("🚀");
    const d = new StreamDetokenizer(tok);
    expect(d.push(rocket[0]).text).toBe("");
    expect(d.flush().text).toBe("\ufffd");
  });
});
