/**
 * TokenIdTracker fed the real detokenizer's events, as the generator yields them: a token's id goes
 * with the event that releases the first character it starts, and the stop decides the tail.
 */
import { describe, expect, it } from "vitest";
import type { DoneEvent, TokenEvent } from "../../src/generate/generator";
import { TokenIdTracker } from "../../src/api/token-ids";
import { loadTokenizer, StreamDetokenizer } from "../../src/tokenizer/node";

const tok = await loadTokenizer();
const EOS = tok.eosId!;

/** What the generator yields for these ids (the last flushes unless a stop ended it), and what each event releases. */
function run(ids: number[], stop: string[] = []): { texts: string[]; released: number[][]; tail: number[] } {
  const detok = new StreamDetokenizer(tok, { stop, stopTokenIds: [EOS] });
  const tracker = new TokenIdTracker(tok);
  const texts: string[] = [];
  const released: number[][] = [];
  for (const [i, id] of ids.entries()) {
    const ev = detok.push(id);
    const last = ev.stop !== undefined || i === ids.length - 1;
    const text = last && !ev.stop ? ev.text + detok.flush().text : ev.text;
    const tokenEvent: TokenEvent = { type: "token", id, text };
    texts.push(text);
    released.push(tracker.push(tokenEvent));
    if (last) {
      const done: DoneEvent = { type: "done", finishReason: ev.stop ? "stop" : "length", ...(ev.stop ? { stop: ev.stop } : {}), usage: { prompt_tokens: 1, completion_tokens: i + 1 } };
      return { texts, released, tail: tracker.finish(done) };
    }
  }
  throw new Error("no ids");
}

describe("TokenIdTracker", () => {
  it("holds the ids of a character split across tokens until the character is released", () => {
    const ids = tok.encode("🦊 fox"); // the emoji's four bytes are spread over three tokens
    expect(ids).toHaveLength(4);
    const r = run(ids);
    expect(r.texts).toEqual(["", "", "🦊", " fox"]);
    expect(r.released).toEqual([[], [], ids.slice(0, 3), ids.slice(3)]);
    expect(r.tail).toEqual([]);
  });

  it("holds ids while text might be a stop string, and releases them when it is not", () => {
    const ids = tok.encode("Hello world again");
    const r = run(ids, [" world peace"]);
    expect(r.released.flat()).toEqual(ids);
    expect(r.texts.join("")).toBe("Hello world again");
    expect(r.released[1]).toEqual([]); // " world" might begin " world peace"
  });

  it("leaves out the tokens inside a matched stop string; a token the stop starts inside stays", () => {
    const ids = tok.encode("Hello world again and again");
    const r = run(ids, [" again"]);
    expect(r.texts.join("")).toBe("Hello world");
    expect([...r.released.flat(), ...r.tail]).toEqual(tok.encode("Hello world"));
    const straddle = run(tok.encode("Hello world again"), ["orld"]);
    expect(straddle.texts.join("")).toBe("Hello w");
    expect([...straddle.released.flat(), ...straddle.tail]).toEqual(tok.encode("Hello world"));
  });

  it("leaves out the stop token, and keeps a textless special token at the end of a length finish", () => {
    const ids = tok.encode("Hello world");
    const stopped = run([...ids, EOS]);
    expect([...stopped.released.flat(), ...stopped.tail]).toEqual(ids);
    const special = tok.specialId("<|im_start|>")!;
    const cut = new TokenIdTracker(tok);
    const detok = new StreamDetokenizer(tok, { stopTokenIds: [EOS] });
    const out = [...ids, special].flatMap((id) => cut.push({ type: "token", id, text: detok.push(id).text }));
    const tail = cut.finish({ type: "done", finishReason: "length", usage: { prompt_tokens: 1, completion_tokens: 3 } });
    expect([...out, ...tail]).toEqual([...ids, special]);
  });
});
