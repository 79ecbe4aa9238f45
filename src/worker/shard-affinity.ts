/**
 * Session affinity for replicated shard pipelines (docs/sharding.md, "Replicas"): which replica
 * serves a request. Pure: the same key gives the same replica in every coordinator isolate, with
 * no shared state, so a conversation keeps to one pipeline wherever its requests land.
 *
 * The key, first that applies:
 *   1. the `x-session-affinity` header: the client names its session;
 *   2. the OpenAI `user` field: one end user's requests together;
 *   3. the start of the prompt. Chat: the messages up to and including the first user message —
 *      the rendered prompt through the end of the first user turn. Every later turn of the same
 *      chat renders that same start (the template renders earlier turns unchanged), and two chats
 *      differ there unless they open identically, in which case they share that prefix anyway. A
 *      fixed token count could not do both: shorter than a shared system prompt and every chat
 *      lands on one replica; longer than a short first turn and the next turn moves. Completions
 *      have no turns to find: their first PROMPT_PREFIX_TOKENS prompt tokens.
 *
 * The replica is chosen by rendezvous hashing: each replica scores the key, the highest wins.
 * Keys spread evenly, and going from N to N+1 replicas moves only the keys the new replica wins
 * (about 1/(N+1) of them); every other conversation stays where it was.
 */

export const AFFINITY_HEADER = "x-session-affinity";
/** Tokens of a completions prompt that pick its replica: about a sentence, so unrelated prompts differ and a text that a client keeps extending keeps its replica. */
export const PROMPT_PREFIX_TOKENS = 32;

export type AffinitySource = "header" | "user" | "prompt";

export interface Affinity {
  key: string;
  by: AffinitySource;
}

/** The request's affinity key; `body` is the request's JSON body, already validated by the API. */
export function affinityOf(headers: Headers, body: unknown, prompt: readonly number[]): Affinity {
  const header = headers.get(AFFINITY_HEADER)?.trim();
  if (header) return { key: header, by: "header" };
  const b = (body ?? {}) as { user?: unknown; messages?: unknown };
  if (typeof b.user === "string" && b.user !== "") return { key: b.user, by: "user" };
  if (Array.isArray(b.messages)) {
    const messages = b.messages as { role?: unknown; content?: unknown }[];
    const firstUser = messages.findIndex((m) => m?.role === "user");
    const opening = messages.slice(0, firstUser < 0 ? messages.length : firstUser + 1).map((m) => [m?.role, m?.content]);
    return { key: `chat:${JSON.stringify(opening)}`, by: "prompt" };
  }
  return { key: `prompt:${prompt.slice(0, PROMPT_PREFIX_TOKENS).join(",")}`, by: "prompt" };
}

/** FNV-1a over the string's UTF-16 code units. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's finalizer: every input bit flips about half the output bits. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Every replica in 0..replicas−1, best first for `key`: the first serves it, the rest are its fallbacks in order. */
export function replicaRanking(key: string, replicas: number): number[] {
  if (!Number.isInteger(replicas) || replicas < 1) throw new RangeError(`replicas must be a positive integer, got ${replicas}`);
  const h = fnv1a(key);
  // The golden-ratio multiple gives each replica its own, well-separated salt.
  const scores = Array.from({ length: replicas }, (_, r) => mix(h ^ Math.imul(r + 1, 0x9e3779b9)));
  // Ties (rare) go to the lower replica, as a stable order.
  return scores.map((_, r) => r).sort((a, b) => scores[b] - scores[a] || a - b);
}

/** The replica in 0..replicas−1 that serves `key`. */
export function replicaFor(key: string, replicas: number): number {
  return replicaRanking(key, replicas)[0];
}

/**
 * The order in which a key's replicas are tried: the healthy ones in the key's ranking, then the
 * unhealthy ones in the same ranking (when every healthy one fails too, an unhealthy one may have
 * recovered; when none serves, the request fails with the error of the first tried). Each key falls
 * back along its own ranking, so the keys of a failed replica spread evenly over the others.
 */
export function failoverOrder(ranking: readonly number[], healthy: (replica: number) => boolean): number[] {
  return [...ranking.filter((r) => healthy(r)), ...ranking.filter((r) => !healthy(r))];
}
