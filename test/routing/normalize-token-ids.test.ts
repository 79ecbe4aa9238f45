/**
 * return_token_ids through the origin path: vLLM's token_ids and prompt_token_ids survive
 * normalization where the edge puts them (completions: on the choice; chat: prompt ids on the
 * response), streamed chunk by chunk and collected into one response; without them, no keys appear.
 */
import { describe, expect, it } from "vitest";
import { collect, normalizeChunk, type NormalizeContext } from "../../src/routing/normalize";

const usage = { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 };
const vllm = { id: "x-vllm", created: 1, model: "stabilityai/stablelm-2-1_6b", system_fingerprint: "fp" };

describe("normalize: return_token_ids from the origin", () => {
  it("completions: prompt_token_ids and each chunk's token_ids stay on the choice, and are joined when collected", () => {
    const ctx: NormalizeContext = { endpoint: "completions", id: "cmpl-1", created: 2, model: "m" };
    const raw = [
      { ...vllm, choices: [{ index: 0, text: " Hel", finish_reason: null, stop_reason: null, prompt_token_ids: [1, 2, 3], token_ids: [10] }] },
      { ...vllm, choices: [{ index: 0, text: "lo", finish_reason: null, token_ids: [11, 12] }] },
      { ...vllm, choices: [{ index: 0, text: "", finish_reason: "length", token_ids: [] }] },
    ];
    const chunks = raw.map((r) => normalizeChunk(r, ctx)!);
    expect(chunks[0].choices[0]).toMatchObject({ text: " Hel", prompt_token_ids: [1, 2, 3], token_ids: [10] });
    expect(chunks[1].choices[0]).not.toHaveProperty("prompt_token_ids");
    const whole = collect(chunks, usage, ctx) as any;
    expect(whole.choices[0]).toMatchObject({ text: " Hello", prompt_token_ids: [1, 2, 3], token_ids: [10, 11, 12] });
  });

  it("chat: prompt_token_ids on the response, token_ids on the choice", () => {
    const ctx: NormalizeContext = { endpoint: "chat", id: "chatcmpl-1", created: 2, model: "m" };
    const raw = [
      { ...vllm, prompt_token_ids: [4, 5], choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null, token_ids: [] }] },
      { ...vllm, choices: [{ index: 0, delta: { content: "Hi" }, finish_reason: null, token_ids: [20] }] },
      { ...vllm, choices: [{ index: 0, delta: {}, finish_reason: "stop", token_ids: [] }] },
    ];
    const chunks = raw.map((r) => normalizeChunk(r, ctx)!);
    expect((chunks[0] as any).prompt_token_ids).toEqual([4, 5]);
    const whole = collect(chunks, usage, ctx) as any;
    expect(whole.prompt_token_ids).toEqual([4, 5]);
    expect(whole.choices[0].token_ids).toEqual([20]);
  });

  it("without them (or with something that is not ids), the usual keys only", () => {
    const ctx: NormalizeContext = { endpoint: "completions", id: "cmpl-1", created: 2, model: "m" };
    const chunk = normalizeChunk({ ...vllm, choices: [{ index: 0, text: "a", finish_reason: "length", token_ids: ["x"] }] }, ctx)!;
    expect(Object.keys(chunk.choices[0]).sort()).toEqual(["finish_reason", "index", "logprobs", "text"]);
    expect(Object.keys((collect([chunk], usage, ctx) as any).choices[0]).sort()).toEqual(["finish_reason", "index", "logprobs", "text"]);
  });
});
