/**
 * TokenIdTracker fed the generator's own token events (a scripted engine makes greedy sampling
 * generate the given ids): a token's id goes with the event that releases the first character it
 * starts, and the stop decides the tail.
 */
import { describe, expect, it } from "vitest";
import { generate } from "../../src/generate/generator";
import type { Engine } from "../../src/model/engine";
import { TokenIdTracker } from "../../src/api/token-ids";
import { loadTokenizer } from "../../src/tokenizer/node";

const tok = await loadTokenizer();
const EOS = tok.eosId!;

/** An engine whose every forward call puts the next of `script` on top, so temperature 0 generates exactly `script`. */
function scripted(script: readonly number[]): Engine {
  let next = 0;
  return {
    name: "scripted",
    config: { vocabSize: tok.vocabSize, contextLength: 256 },
    newSequence: () => ({}),
    forward: () => {
      const logits = new Float32Array(tok.vocabSize);
      logits[script[next++] ?? EOS] = 10;
      return [logits];
    },
  };
}

/** The generator's token events for these ids (up to a stop), the ids each releases, and the ids its done event adds. */
async function run(ids: number[], stop: string[] = []): Promise<{ texts: string[]; released: number[][]; tail: number[] }> {
  const tracker = new TokenIdTracker();
  const texts: string[] = [];
  const released: number[][] = [];
  for await (const ev of generate(scripted(ids), tok, { prompt: tok.encode("Hi"), maxTokens: ids.length, stop, stopTokenIds: [EOS], sampling: { temperature: 0 } })) {
    if (ev.type === "token") {
      texts.push(ev.text);
      released.push(tracker.push(ev));
    } else if (ev.type === "done") return { texts, released, tail: tracker.finish(ev) };
  }
  throw new Error("the generation ended without a done event");
}

describe("TokenIdTracker", async () => {
  it("holds the ids of a character split across tokens until the character is released", async () => {
    const ids = tok.encode("🦊 fox"); // the emoji's four bytes are spread over three tokens
    expect(ids).toHaveLength(4);
    const r = await run(ids);
    expect(r.texts).toEqual(["", "", "🦊", " fox"]);
    expect(r.released).toEqual([[], [], ids.slice(0, 3), ids.slice(3)]);
    expect(r.tail).toEqual([]);
  });

  it("holds ids while text might be a stop string, and releases them when it is not", async () => {
    const ids = tok.encode("Hello world again");
    const r = await run(ids, [" world peace"]);
    expect(r.released.flat()).toEqual(ids);
    expect(r.texts.join("")).toBe("Hello world again");
    expect(r.released[1]).toEqual([]); // " world" might begin " world peace"
  });

  it("leaves out the tokens inside a matched stop string; a token the stop starts inside stays", async () => {
    const ids = tok.encode("Hello world again and again");
    const r = await run(ids, [" again"]);
    expect(r.texts.join("")).toBe("Hello world");
    expect([...r.released.flat(), ...r.tail]).toEqual(tok.encode("Hello world"));
    const straddle = await run(tok.encode("Hello world again"), ["orld"]);
    expect(straddle.texts.join("")).toBe("Hello w");
    expect([...straddle.released.flat(), ...straddle.tail]).toEqual(tok.encode("Hello world"));
  });

  it("leaves out the stop token, and keeps a textless special token at the end of a length finish", async () => {
    const ids = tok.encode("Hello world");
    const stopped = await run([...ids, EOS]);
    expect([...stopped.released.flat(), ...stopped.tail]).toEqual(ids);
    const special = tok.specialId("<|im_start|>")!;
    const cut = await run([...ids, special]);
    expect(cut.texts.join("")).toBe("Hello world");
    expect([...cut.released.flat(), ...cut.tail]).toEqual([...ids, special]);
  });

  it("characters split across tokens inside text held for a stop string: ids wait for both, and go with the text they start", async () => {
    // " 🦊" is " " plus the emoji's first two bytes; the rest comes in two more tokens; "🦊" alone
    // might begin the stop string, so it waits for what follows.
    const ids = tok.encode("Hi 🦊🦊 fox");
    expect(ids).toHaveLength(8);
    const held = await run(ids, ["🦊 cat"]);
    expect(held.texts).toEqual(["Hi", " ", "", "", "", "", "🦊", "🦊 fox"]);
    expect(held.released).toEqual([[ids[0]], [ids[1]], [], [], [], [], ids.slice(2, 4), ids.slice(4)]);
    expect(held.tail).toEqual([]);
    // The same stop text matched: "🦊🦊" cuts the answer before it; the token whose bytes the cut
    // falls inside (the space and the first emoji's start) stays, the ones after it do not.
    const cut = tok.encode("Hi 🦊 fox 🦊🦊 end");
    const stopped = await run(cut, ["🦊🦊"]);
    expect(stopped.texts.join("")).toBe("Hi 🦊 fox ");
    expect(stopped.released).toEqual([[cut[0]], [cut[1]], [], [], cut.slice(2, 5), [cut[5]], [], [], [], [], []]);
    expect(stopped.tail).toEqual([]);
  });
});
