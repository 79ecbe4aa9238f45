/**
 * What the soak sends: a seeded mix of requests, each a plan (path, body, whether and when the
 * client gives up, which statuses are acceptable). Only the choice of requests is seeded; when
 * they reach the server depends on the server, so two runs with one seed send the same requests
 * per client, in the same order, but not interleaved the same way.
 *
 * The prompts are pseudo-words over a few syllables: the synthetic model's text is gibberish
 * anyway, and the words tokenize to roughly one or two tokens each, so a "long" prompt of a few
 * hundred words is several prefill chunks (32 positions in the Worker, 64 rows per step in serve).
 */
import { seededRandom } from "../../src/util/random";

export type Kind =
  | "completion"
  | "completion-stream"
  | "chat"
  | "chat-stream"
  | "long"
  | "long-stream"
  | "abort-prefill"
  | "abort-decode"
  | "bad-body"
  | "burst"
  | "fill";

export interface Plan {
  kind: Kind;
  path: "/v1/completions" | "/v1/chat/completions";
  /** Sent as is: bad bodies are not JSON at all. */
  body: string;
  stream: boolean;
  /** The client aborts the fetch after this many ms, or after this many token events, whichever comes first. */
  abortAfterMs?: number;
  abortAfterEvents?: number;
  /** Statuses that are not a failure for this request. */
  expect: readonly number[];
}

/** Statuses a valid request may get under load: served, or refused because the queue is full. */
const SERVED_OR_FULL = [200, 429] as const;

const SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qu", "da", "fe", "gi", "ho", "ju"];

export type Rand = () => number;

const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

function words(r: Rand, n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let w = "";
    for (let s = int(r, 1, 3); s > 0; s--) w += pick(r, SYLLABLES);
    out.push(w);
  }
  return out.join(" ");
}

/** A system prompt many chats share, so the prefix cache is exercised too. */
const SHARED_SYSTEM = words(seededRandom(7), 60);

/** Sampling fields that every valid request varies; some carry stop sequences. */
function sampling(r: Rand, maxTokens: number): Record<string, unknown> {
  const body: Record<string, unknown> = { max_tokens: maxTokens, temperature: pick(r, [0, 0.7, 1, 1.3]), seed: int(r, 0, 1 << 30) };
  if (r() < 0.5) body.top_p = pick(r, [0.5, 0.9, 1]);
  if (r() < 0.3) body.stop = r() < 0.5 ? pick(r, SYLLABLES) : [pick(r, SYLLABLES), `${pick(r, SYLLABLES)}${pick(r, SYLLABLES)}`, " "];
  return body;
}

function chatMessages(r: Rand, userWords: number): unknown[] {
  const msgs: unknown[] = [];
  if (r() < 0.6) msgs.push({ role: "system", content: SHARED_SYSTEM });
  if (r() < 0.3) msgs.push({ role: "user", content: words(r, int(r, 2, 10)) }, { role: "assistant", content: words(r, int(r, 2, 10)) });
  msgs.push({ role: "user", content: words(r, userWords) });
  return msgs;
}

function valid(r: Rand, kind: Kind, chat: boolean, stream: boolean, promptWords: number, maxTokens: number): Plan {
  const body: Record<string, unknown> = chat ? { messages: chatMessages(r, promptWords) } : { prompt: words(r, promptWords) };
  Object.assign(body, sampling(r, maxTokens));
  if (stream) {
    body.stream = true;
    if (r() < 0.5) body.stream_options = { include_usage: true };
  }
  return { kind, path: chat ? "/v1/chat/completions" : "/v1/completions", body: JSON.stringify(body), stream, expect: SERVED_OR_FULL };
}

/** Requests the server must refuse with 400 before any work. */
function badBody(r: Rand): Plan {
  const path = r() < 0.5 ? "/v1/completions" : "/v1/chat/completions";
  const chat = path === "/v1/chat/completions";
  const base = chat ? { messages: [{ role: "user", content: "hi" }] } : { prompt: "hi" };
  const bodies = [
    () => `{"prompt": "unterminated`,
    () => "not json at all",
    () => "",
    () => JSON.stringify({ ...base, temperature: 7 }),
    () => JSON.stringify({ ...base, n: 2 }),
    () => JSON.stringify({ ...base, max_tokens: -3 }),
    () => JSON.stringify({ ...base, no_such_field: true }),
    () => JSON.stringify({ ...base, stream: "yes" }),
    () => JSON.stringify(chat ? { messages: "hi" } : { prompt: { text: "hi" } }),
    () => JSON.stringify([1, 2, 3]),
  ];
  return { kind: "bad-body", path, body: pick(r, bodies)(), stream: false, expect: [400] };
}

/** One client's next request. */
export function nextPlan(r: Rand): Plan {
  const x = r();
  if (x < 0.14) return valid(r, "completion", false, false, int(r, 1, 30), int(r, 1, 32));
  if (x < 0.3) return valid(r, "completion-stream", false, true, int(r, 1, 30), int(r, 1, 48));
  if (x < 0.42) return valid(r, "chat", true, false, int(r, 1, 30), int(r, 1, 32));
  if (x < 0.58) return valid(r, "chat-stream", true, true, int(r, 1, 30), int(r, 1, 48));
  if (x < 0.7) {
    const stream = r() < 0.6;
    return valid(r, stream ? "long-stream" : "long", r() < 0.5, stream, int(r, 150, 900), int(r, 1, 24));
  }
  if (x < 0.78) {
    // A long prompt given up on before or while it is fed: the engine must stop between chunks.
    const p = valid(r, "abort-prefill", r() < 0.5, r() < 0.8, int(r, 300, 1200), int(r, 8, 64));
    return { ...p, abortAfterMs: int(r, 0, 250) };
  }
  if (x < 0.88) {
    // Given up on mid-answer: after k tokens when streamed, after a delay when not.
    const stream = r() < 0.8;
    const p = valid(r, "abort-decode", r() < 0.5, stream, int(r, 1, 20), int(r, 200, 600));
    return stream ? { ...p, abortAfterEvents: int(r, 1, 24), abortAfterMs: 30_000 } : { ...p, abortAfterMs: int(r, 20, 400) };
  }
  return badBody(r);
}

/** A burst's requests: short and cheap, many at once, so that some must find the queue full. */
export function burstPlan(r: Rand): Plan {
  return { ...valid(r, "burst", r() < 0.5, r() < 0.5, int(r, 1, 8), int(r, 1, 8)), kind: "burst" };
}

/** Distinct long prompts fed once each (max_tokens 1): they write KV blocks that were never written, until none is left. */
export function fillPlan(r: Rand): Plan {
  return { ...valid(r, "fill", false, false, int(r, 600, 900), 1), kind: "fill" };
}

/** An independent, reproducible stream of draws per client and per purpose. */
export function randFor(seed: number, stream: number): Rand {
  return seededRandom((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0);
}
