/**
 * `return_token_ids` over real HTTP on `edgelm serve` (wasm engine, prefix cache on): the ids
 * streamed chunk by chunk add up to the whole response's, they decode to the text (a stop string
 * included), the prompt's are the tokenizer's, and sending `prompt + token_ids + more` back is
 * served from the KV cache up to the last full block — the second turn of a chat prefills only
 * what is new.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../../src/node/server";
import { encodeChat, loadTokenizer, type Tokenizer } from "../../src/tokenizer/node";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE } from "./helpers";

const BLOCK = 16;
let server: RunningServer;
let tok: Tokenizer;
beforeAll(async () => {
  const path = await synthGGUF("tiny", "q4_0");
  tok = await loadTokenizer(path);
  server = await startServer({ modelPath: path, port: 0, threads: 1, maxBatch: 1, log: () => {} });
  await server.ready;
});
afterAll(() => server?.close());

const call = async (path: string, body: unknown) => fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const json = async (path: string, body: unknown) => {
  const res = await call(path, body);
  expect(res.status).toBe(200);
  return res.json();
};
const stream = async (path: string, body: object) => parseSSE(await (await call(path, { ...body, stream: true })).text()).events.filter((e) => e.choices.length === 1);
const floorBlock = (n: number) => Math.floor(n / BLOCK) * BLOCK;

const PROMPT = "The quick brown fox jumps over the lazy dog. Once upon a time";
const base = { prompt: PROMPT, max_tokens: 24, temperature: 0.9, seed: 7, return_token_ids: true };

describe("return_token_ids", { timeout: 60_000 }, () => {
  it("completions: streamed ids add up to the whole response's, decode to the text, and the prompt's are the tokenizer's", async () => {
    const whole = await json("/v1/completions", base);
    const choice = whole.choices[0];
    expect(choice.prompt_token_ids).toEqual(tok.encode(PROMPT));
    expect(choice.token_ids).toHaveLength(whole.usage.completion_tokens);
    expect(tok.decode(choice.token_ids)).toBe(choice.text);

    const chunks = await stream("/v1/completions", base);
    expect(chunks[0].choices[0].prompt_token_ids).toEqual(choice.prompt_token_ids);
    expect(chunks.slice(1).every((c) => c.choices[0].prompt_token_ids === undefined)).toBe(true);
    expect(chunks.every((c) => Array.isArray(c.choices[0].token_ids))).toBe(true);
    expect(chunks.flatMap((c) => c.choices[0].token_ids)).toEqual(choice.token_ids);
    expect(chunks.map((c) => c.choices[0].text).join("")).toBe(choice.text);
    // Each chunk's ids are the tokens whose text it carries.
    for (const c of chunks) if (c.choices[0].token_ids.length) expect(c.choices[0].text).toBe(tok.decode(c.choices[0].token_ids));
  });

  it("with a stop string, the ids stop where the text stops, streamed or not", async () => {
    const free = await json("/v1/completions", base);
    const ids: number[] = free.choices[0].token_ids;
    // A stop string that starts on a token boundary, and nowhere earlier in the text.
    const k = [...ids.keys()].slice(4).find((i) => {
      const before = tok.decode(ids.slice(0, i));
      const stop = tok.decode(ids.slice(i, i + 2));
      return stop.trim() !== "" && free.choices[0].text.indexOf(stop) === before.length && before === free.choices[0].text.slice(0, before.length);
    });
    expect(k).toBeDefined();
    const stop = tok.decode(ids.slice(k, k! + 2));
    const whole = await json("/v1/completions", { ...base, stop });
    expect(whole.choices[0].finish_reason).toBe("stop");
    expect(whole.choices[0].token_ids).toEqual(ids.slice(0, k));
    expect(tok.decode(whole.choices[0].token_ids)).toBe(whole.choices[0].text);
    const chunks = await stream("/v1/completions", { ...base, stop });
    expect(chunks.flatMap((c) => c.choices[0].token_ids)).toEqual(whole.choices[0].token_ids);
  });

  it("chat: prompt_token_ids are the template's ids, streamed ids equal the whole response's", async () => {
    const messages = [{ role: "user", content: "Tell me about foxes." }];
    const body = { messages, max_tokens: 20, temperature: 0.9, seed: 3, return_token_ids: true };
    const whole = await json("/v1/chat/completions", body);
    expect(whole.prompt_token_ids).toEqual(encodeChat(tok, messages, { template: "zephyr" }));
    const ids: number[] = whole.choices[0].token_ids;
    expect(tok.decode(ids)).toBe(whole.choices[0].message.content);
    const chunks = await stream("/v1/chat/completions", body);
    expect(chunks[0].prompt_token_ids).toEqual(whole.prompt_token_ids);
    expect(chunks.flatMap((c) => c.choices[0].token_ids)).toEqual(ids);
  });

  it("chat with a tool call: ids of text that became tool_calls still arrive, streamed as whole", async () => {
    const tools = [{ type: "function", function: { name: "add", parameters: { type: "object", properties: { a: { type: "integer", minimum: 0, maximum: 99 }, b: { type: "integer", minimum: 0, maximum: 99 } }, required: ["a", "b"] } } }];
    const body = { messages: [{ role: "user", content: "2+3?" }], max_tokens: 200, seed: 7, tools, tool_choice: { type: "function", function: { name: "add" } }, return_token_ids: true };
    const whole = await json("/v1/chat/completions", body);
    expect(whole.choices[0].message.tool_calls).toHaveLength(1);
    const ids: number[] = whole.choices[0].token_ids;
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.length).toBeLessThanOrEqual(whole.usage.completion_tokens);
    const chunks = await stream("/v1/chat/completions", body);
    expect(chunks.flatMap((c) => c.choices[0].token_ids)).toEqual(ids);
  });

  it("is off by default, and a value that is not a boolean is a 400 naming the field", async () => {
    const plain = await json("/v1/completions", { ...base, return_token_ids: undefined });
    expect(plain.choices[0].token_ids).toBeUndefined();
    expect(plain.choices[0].prompt_token_ids).toBeUndefined();
    for (const [path, extra] of [
      ["/v1/completions", { prompt: "Hi" }],
      ["/v1/chat/completions", { messages: [{ role: "user", content: "Hi" }] }],
    ] as const) {
      const res = await call(path, { ...extra, max_tokens: 2, return_token_ids: "yes" });
      expect(res.status).toBe(400);
      const err = (await res.json()).error;
      expect(err.param).toBe("return_token_ids");
      expect(err.message).toMatch(/return_token_ids must be a boolean/);
    }
  });
});

describe("a second turn built from the reply's ids comes from the prefix cache", { timeout: 60_000 }, () => {
  it("completions: prompt + token_ids + new ids has cached_tokens ≥ the full blocks of prompt + reply", async () => {
    const prompt = tok.encode("In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole.");
    const first = await json("/v1/completions", { prompt, max_tokens: 32, temperature: 0.9, seed: 11, return_token_ids: true });
    const reply: number[] = first.choices[0].token_ids;
    expect(reply).toHaveLength(32);
    const next = [...prompt, ...reply, ...tok.encode(" And then the dragon came.")];
    const second = await json("/v1/completions", { prompt: next, max_tokens: 2, temperature: 0 });
    expect(second.usage.prompt_tokens).toBe(next.length);
    // The cache holds what was forwarded: the prompt and every reply token but the last sampled one.
    expect(second.usage.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(floorBlock(prompt.length + reply.length - 1));
  });

  it("chat: [system, user, assistant(reply text), user] reuses the first turn's prompt and the reply", async () => {
    const turn1 = [
      { role: "system", content: "You are a helpful assistant who answers briefly." },
      { role: "user", content: "What do foxes eat?" },
    ];
    const first = await json("/v1/chat/completions", { messages: turn1, max_tokens: 32, temperature: 0.9, seed: 5, return_token_ids: true });
    const reply: string = first.choices[0].message.content;
    const turn2 = [...turn1, { role: "assistant", content: reply }, { role: "user", content: "And badgers?" }];
    const second = await json("/v1/chat/completions", { messages: turn2, max_tokens: 2, temperature: 0, return_token_ids: true });
    const p1: number[] = first.prompt_token_ids;
    const p2: number[] = second.prompt_token_ids;
    // How far the re-rendered conversation agrees with what the engine saw: turn 1's prompt, then its reply's ids.
    const seen = [...p1, ...first.choices[0].token_ids];
    let same = 0;
    while (same < Math.min(seen.length, p2.length) && seen[same] === p2[same]) same++;
    expect(p2.slice(0, p1.length)).toEqual(p1);
    const cached = second.usage.prompt_tokens_details.cached_tokens;
    expect(cached).toBeGreaterThanOrEqual(floorBlock(Math.min(same, seen.length - 1)));
    expect(cached).toBeGreaterThanOrEqual(floorBlock(p1.length));
  });
});
