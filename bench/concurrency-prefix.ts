/**
 * The prefix-reuse case: a chat with a 500-token system prompt. The first turn (system + a
 * 20-token user turn) is prefilled whole and answered with 32 tokens; the second turn sends the
 * whole history again plus a new 20-token user turn, and should prefill only what is new. Each
 * turn's prefill time is its time to first token at the client, on an idle server.
 */
import { promptOf, streamCompletion } from "./concurrency-client";

export interface PrefixCase {
  first_ms: number;
  second_ms: number;
  /** Prompt tokens of each turn. */
  first_tokens: number;
  second_tokens: number;
  /** Of the second turn's prompt, the tokens served from the prefix cache (usage). */
  cached: number;
}

const SYSTEM = 500;
const TURN = 20;
const REPLY = 32;

/** `first`: the request index the case's prompts start from; no other request of the run may start with the same tokens, or the first turn would find its start cached. */
export async function prefixReuseCase(url: string, first: number): Promise<PrefixCase> {
  const turn1 = [...promptOf(first, SYSTEM), ...promptOf(first + 1, TURN)];
  const a = await streamCompletion(url, turn1, REPLY, 1, { temperature: 0 });
  // Stands in for the reply's token ids: the API takes ids, not the sampled text.
  const reply = promptOf(first + 2, REPLY);
  const turn2 = [...turn1, ...reply, ...promptOf(first + 3, TURN)];
  const b = await streamCompletion(url, turn2, 1, 2, { temperature: 0 });
  return { first_ms: a.tokens[0] - a.start, second_ms: b.tokens[0] - b.start, first_tokens: turn1.length, second_tokens: turn2.length, cached: b.cached ?? 0 };
}
