/**
 * The prefix-reuse case: a chat with a 500-token system prompt. The first turn (system + a
 * 20-token user turn) is prefilled whole and answered with 32 tokens; the second turn sends the
 * whole history again — the first turn, the model's own reply, a new 20-token user turn — and
 * should prefill only what is new. Each turn's prefill time is its time to first token at the
 * client, on an idle server.
 *
 * Two ways a client sends the history back: as token ids over /v1/completions (the reply's ids
 * from return_token_ids, exactly what the engine computed), and as chat messages over
 * /v1/chat/completions (the reply as text, re-tokenized by the server: where that differs from
 * the ids generated, the cache stops there).
 */
import { loadTokenizer } from "../src/tokenizer/node";
import { promptOf, streamChat, streamCompletion, type StreamTiming } from "./concurrency-client";

export interface TurnPair {
  first_ms: number;
  second_ms: number;
  /** Prompt tokens of each turn. */
  first_tokens: number;
  second_tokens: number;
  /** Of the second turn's prompt, the tokens served from the prefix cache (usage). */
  cached: number;
}

export interface PrefixCase extends TurnPair {
  /** The same conversation as chat messages with the reply's text (an error when the model has no chat template). */
  chat?: TurnPair | { error: string };
}

const SYSTEM = 500;
const TURN = 20;
const REPLY = 32;

const pair = (a: StreamTiming, b: StreamTiming, firstTokens: number, secondTokens: number): TurnPair => ({
  first_ms: a.tokens[0] - a.start,
  second_ms: b.tokens[0] - b.start,
  first_tokens: firstTokens,
  second_tokens: secondTokens,
  cached: b.cached ?? 0,
});

/** `first`: the request index the case's prompts start from; no other request of the run may start with the same tokens, or the first turn would find its start cached. */
export async function prefixReuseCase(url: string, first: number): Promise<PrefixCase> {
  const turn1 = [...promptOf(first, SYSTEM), ...promptOf(first + 1, TURN)];
  const a = await streamCompletion(url, turn1, REPLY, 1, { temperature: 0, returnTokenIds: true });
  if (a.tokenIds.length === 0) throw new Error("prefix case: the server sent no token_ids (return_token_ids)");
  const turn2 = [...turn1, ...a.tokenIds, ...promptOf(first + 3, TURN)];
  const b = await streamCompletion(url, turn2, 1, 2, { temperature: 0 });
  return { ...pair(a, b, turn1.length, turn2.length), chat: await chatCase(url, first + 4) };
}

/** The chat client's way: text messages, the reply sent back as the text it received. */
async function chatCase(url: string, first: number): Promise<TurnPair | { error: string }> {
  const tok = await loadTokenizer();
  const text = (r: number, n: number) => tok.decode(promptOf(r, n));
  const turn1 = [
    { role: "system", content: text(first, SYSTEM) },
    { role: "user", content: text(first + 1, TURN) },
  ];
  try {
    const a = await streamChat(url, turn1, REPLY, 1, { temperature: 0 });
    const turn2 = [...turn1, { role: "assistant", content: a.text }, { role: "user", content: text(first + 3, TURN) }];
    const b = await streamChat(url, turn2, 1, 2, { temperature: 0 });
    return pair(a, b, a.promptTokens ?? 0, b.promptTokens ?? 0);
  } catch (e) {
    return { error: (e as Error).message };
  }
}
