import { describe, expect, it, vi } from "vitest";
import { parseChatRequest } from "../../src/api/chat-request";
import { parseCompletionRequest } from "../../src/api/completion-request";
import { ApiError } from "../../src/api/errors";
import { GenerationQueue } from "../../src/api/queue";
import { SSE_DONE, sseEvent, sseStream } from "../../src/api/sse";

/** The ApiError a parse throws, so tests can check status, param and code together. */
function rejection(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error("expected an ApiError");
}

describe("POST /v1/completions validation", () => {
  it("fills OpenAI/vLLM defaults", () => {
    const r = parseCompletionRequest({ prompt: "hi" });
    expect(r).toMatchObject({ prompt: "hi", maxTokens: 16, stream: false, includeUsage: false, echo: false, allowSpecialTokens: false, stop: [], seed: undefined, logprobs: undefined });
    expect(r.sampling).toEqual({ temperature: 1, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0 });
  });

  it("reads every sampling field, treating null as absent", () => {
    const r = parseCompletionRequest({
      model: "m", prompt: [1, 2, 3], max_tokens: 5, temperature: 0.7, top_p: 0.9, top_k: 40, min_p: 0.05, stop: ["\n", "END"], seed: 42,
      presence_penalty: 0.5, frequency_penalty: -0.5, repetition_penalty: 1.1, logprobs: 3, echo: false, stream: true,
      stream_options: { include_usage: true }, user: "u1", n: 1, best_of: 1, logit_bias: {}, suffix: null,
    });
    expect(r).toMatchObject({ model: "m", prompt: [1, 2, 3], maxTokens: 5, seed: 42, stop: ["\n", "END"], logprobs: 3, stream: true, includeUsage: true, user: "u1" });
    expect(r.sampling).toEqual({ temperature: 0.7, topP: 0.9, topK: 40, minP: 0.05, repetitionPenalty: 1.1, presencePenalty: 0.5, frequencyPenalty: -0.5 });
    expect(parseCompletionRequest({ prompt: "x", max_tokens: null, temperature: null, stop: null }).maxTokens).toBe(16);
    expect(parseCompletionRequest({ prompt: "x", top_k: -1 }).sampling.topK).toBe(0);
    expect(parseCompletionRequest({ prompt: "x", stop: "END" }).stop).toEqual(["END"]);
    expect(parseCompletionRequest({ prompt: ["one prompt"] }).prompt).toBe("one prompt");
  });

  it("wraps any integer seed into 32 bits deterministically", () => {
    expect(parseCompletionRequest({ prompt: "x", seed: -1 }).seed).toBe(2 ** 32 - 1);
    expect(parseCompletionRequest({ prompt: "x", seed: 2 ** 32 + 5 }).seed).toBe(5);
  });

  it("rejects an unknown field, naming it", () => {
    const e = rejection(() => parseCompletionRequest({ prompt: "x", temprature: 0.5 }));
    expect(e.status).toBe(400);
    expect(e.param).toBe("temprature");
    expect(e.code).toBe("unknown_parameter");
    expect(e.body().error).toEqual({ message: expect.stringContaining("temprature"), type: "invalid_request_error", param: "temprature", code: "unknown_parameter" });
  });

  it.each([
    [{ logit_bias: { "50256": -100 } }, "logit_bias"],
    [{ suffix: "tail" }, "suffix"],
    [{ best_of: 3 }, "best_of"],
    [{ echo: true, logprobs: 1 }, "echo"],
    [{ prompt: ["a", "b"] }, "prompt"],
  ])("rejects known-but-unsupported %j", (extra, param) => {
    const e = rejection(() => parseCompletionRequest({ prompt: "x", ...extra }));
    expect([e.status, e.param, e.code]).toEqual([400, param, "unsupported_parameter"]);
    expect(e.message).toMatch(/not supported/);
  });

  it("says n > 1 is unsupported", () => {
    const e = rejection(() => parseCompletionRequest({ prompt: "x", n: 2 }));
    expect([e.status, e.param]).toEqual([400, "n"]);
    expect(e.message).toMatch(/n > 1 is not supported/);
  });

  it.each([
    [{ prompt: 5 }, "prompt"],
    [{}, "prompt"],
    [{ prompt: [] }, "prompt"],
    [{ prompt: [1, -2] }, "prompt"],
    [{ prompt: [1.5] }, "prompt"],
    [{ prompt: "x", max_tokens: "16" }, "max_tokens"],
    [{ prompt: "x", max_tokens: 0 }, "max_tokens"],
    [{ prompt: "x", max_tokens: 2.5 }, "max_tokens"],
    [{ prompt: "x", temperature: 3 }, "temperature"],
    [{ prompt: "x", temperature: "hot" }, "temperature"],
    [{ prompt: "x", top_p: 0 }, "top_p"],
    [{ prompt: "x", min_p: 2 }, "min_p"],
    [{ prompt: "x", presence_penalty: 5 }, "presence_penalty"],
    [{ prompt: "x", repetition_penalty: 0 }, "repetition_penalty"],
    [{ prompt: "x", logprobs: 6 }, "logprobs"],
    [{ prompt: "x", logprobs: true }, "logprobs"],
    [{ prompt: "x", stop: ["a", "b", "c", "d", "e"] }, "stop"],
    [{ prompt: "x", stop: [1] }, "stop"],
    [{ prompt: "x", stream: "yes" }, "stream"],
    [{ prompt: "x", stream_options: { include_usage: true } }, "stream_options"],
    [{ prompt: "x", stream: true, stream_options: { include_usage: true, extra: 1 } }, "stream_options.extra"],
    [{ prompt: "x", seed: 1.5 }, "seed"],
    [{ prompt: "x", n: 0 }, "n"],
    [{ prompt: [1, 2], allow_special_tokens: true }, "allow_special_tokens"],
  ])("rejects %j (param %s)", (body, param) => {
    const e = rejection(() => parseCompletionRequest(body));
    expect(e.status).toBe(400);
    expect(e.param).toBe(param);
  });

  it("rejects a body that is not an object", () => {
    for (const body of [null, [], "text", 3]) expect(rejection(() => parseCompletionRequest(body)).status).toBe(400);
  });
});

describe("POST /v1/chat/completions validation", () => {
  const messages = [
    { role: "system", content: "be brief" },
    { role: "user", content: [{ type: "text", text: "hi " }, { type: "text", text: "there" }] },
  ];

  it("reads messages (text parts joined) and defaults", () => {
    const r = parseChatRequest({ messages });
    expect(r.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "hi there" },
    ]);
    expect(r.maxTokens).toBeUndefined();
    expect(r.logprobs).toBeUndefined();
    expect(r.sampling.temperature).toBe(1);
  });

  it("takes max_tokens or max_completion_tokens, and logprobs as a boolean with top_logprobs", () => {
    expect(parseChatRequest({ messages, max_tokens: 7 }).maxTokens).toBe(7);
    expect(parseChatRequest({ messages, max_completion_tokens: 9 }).maxTokens).toBe(9);
    expect(parseChatRequest({ messages, logprobs: true }).logprobs).toBe(0);
    expect(parseChatRequest({ messages, logprobs: true, top_logprobs: 3 }).logprobs).toBe(3);
    expect(parseChatRequest({ messages, logprobs: false }).logprobs).toBeUndefined();
  });

  it.each([
    [{ messages: [] }, "messages"],
    [{}, "messages"],
    [{ messages: [{ role: "robot", content: "x" }] }, "messages[0].role"],
    [{ messages: [{ role: "tool" }] }, "messages[0].content"],
    [{ messages: [{ role: "assistant", content: null, tool_calls: [{ type: "function", function: { name: "f", arguments: "{oops" } }] }] }, "messages[0].tool_calls[0].function.arguments"],
    [{ messages: [{ role: "user" }] }, "messages[0].content"],
    [{ messages: [{ role: "user", content: 3 }] }, "messages[0].content"],
    [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] }, "messages[0].content[0].type"],
    [{ messages: [{ role: "user", content: "x", tool_calls: [] }] }, "messages[0].tool_calls"],
    [{ messages: [{ role: "user", content: "x" }], logprobs: 2 }, "logprobs"],
    [{ messages: [{ role: "user", content: "x" }], top_logprobs: 2 }, "top_logprobs"],
    [{ messages: [{ role: "user", content: "x" }], logprobs: true, top_logprobs: 9 }, "top_logprobs"],
    [{ messages: [{ role: "user", content: "x" }], n: 2 }, "n"],
    [{ messages: [{ role: "user", content: "x" }], tools: [{ type: "function" }] }, "tools[0].function"],
    [{ messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { oneOf: [] } } } } }] }, "tools[0].function.parameters#/properties/a/oneOf"],
    [{ messages: [{ role: "user", content: "x" }], tool_choice: "required" }, "tool_choice"],
    [{ messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f" } }], tool_choice: { type: "function", function: { name: "g" } } }, "tool_choice.function.name"],
    [{ messages: [{ role: "user", content: "x" }], functions: [{ name: "f" }] }, "functions"],
    [{ messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema" } }, "response_format.json_schema"],
    [{ messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { a: { type: "string", format: "email" } } } } } }, "response_format.json_schema.schema#/properties/a/format"],
    [{ messages: [{ role: "user", content: "x" }], response_format: { type: "xml" } }, "response_format.type"],
    [{ messages: [{ role: "user", content: "x" }], allow_special_tokens: true }, "allow_special_tokens"],
    [{ messages: [{ role: "user", content: "x" }], echo: true }, "echo"],
    [{ messages: [{ role: "user", content: "x" }], max_tokens: 3, max_completion_tokens: 4 }, "max_tokens"],
  ])("rejects %j (param %s)", (body, param) => {
    const e = rejection(() => parseChatRequest(body));
    expect(e.status).toBe(400);
    expect(e.param).toBe(param);
  });
});

describe("GenerationQueue", () => {
  it("runs one at a time in FIFO order and refuses past its depth with 429", async () => {
    const q = new GenerationQueue(1, 3);
    const first = await q.acquire();
    const order: string[] = [];
    const second = q.acquire().then((r) => (order.push("second"), r));
    const refused = await q.acquire().catch((e: ApiError) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect([(refused as ApiError).status, (refused as ApiError).retryAfter]).toEqual([429, 3]);
    expect(order).toEqual([]);
    first();
    first(); // releasing twice must not free a second slot
    const r2 = await second;
    expect(order).toEqual(["second"]);
    expect(q.running).toBe(true);
    r2();
    expect(q.running).toBe(false);
  });

  it("drops a waiter whose signal aborts, so it never holds the engine", async () => {
    const q = new GenerationQueue(4);
    const first = await q.acquire();
    const ac = new AbortController();
    const waiting = q.acquire(ac.signal);
    expect(q.depth).toBe(1);
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ status: 499 });
    expect(q.depth).toBe(0);
    first();
    expect(q.running).toBe(false);
  });
});

describe("SSE framing", () => {
  async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
    return new Response(stream).text();
  }

  it("writes data: <json>\\n\\n events and ends with [DONE]", async () => {
    async function* src() {
      yield { a: 1 };
      yield { b: "x\ny" };
    }
    let ended = 0;
    const out = await text(sseStream(src(), { onEnd: () => ended++ }));
    expect(out).toBe('data: {"a":1}\n\ndata: {"b":"x\\ny"}\n\ndata: [DONE]\n\n');
    expect(ended).toBe(1);
    expect(new TextDecoder().decode(SSE_DONE)).toBe("data: [DONE]\n\n");
    expect(new TextDecoder().decode(sseEvent({ c: null }))).toBe('data: {"c":null}\n\n');
  });

  it("turns a failure after the first event into an error event and no [DONE]", async () => {
    async function* src() {
      yield { a: 1 };
      throw new Error("engine exploded");
    }
    let ended = 0;
    const out = await text(sseStream(src(), { onEnd: () => ended++ }));
    const lines = out.split("\n\n").filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1].slice(6))).toEqual({ error: { message: expect.stringContaining("engine exploded"), type: "server_error", param: null, code: null } });
    expect(out).not.toContain("[DONE]");
    expect(ended).toBe(1);
  });

  it("calls onCancel and onEnd when the reader goes away", async () => {
    let cancelled = 0;
    let ended = 0;
    let finallyRan = false;
    async function* src() {
      try {
        for (let i = 0; ; i++) yield { i };
      } finally {
        finallyRan = true;
      }
    }
    const reader = sseStream(src(), { onCancel: () => cancelled++, onEnd: () => ended++ }).getReader();
    await reader.read();
    await reader.cancel();
    expect([cancelled, ended, finallyRan]).toEqual([1, 1, true]);
  });

  /** An endless source that counts how far it was driven. */
  function counted() {
    const c = { made: 0, finallyRan: false };
    async function* src() {
      try {
        for (;;) {
          await new Promise((r) => setTimeout(r, 0));
          yield { i: c.made++ };
        }
      } finally {
        c.finallyRan = true;
      }
    }
    return { c, src: src() };
  }

  it("runs ahead of a reader by at most readAhead events, and goes on as the reader takes them", async () => {
    const { c, src } = counted();
    const reader = sseStream(src, { readAhead: 5, stallMs: 60_000 }).getReader();
    await vi.waitFor(() => expect(c.made).toBe(5));
    // Nobody reads: the source stays parked at the bound.
    await new Promise((r) => setTimeout(r, 50));
    expect(c.made).toBe(5);
    for (let i = 0; i < 3; i++) await reader.read();
    await vi.waitFor(() => expect(c.made).toBe(8));
    await reader.cancel();
    expect(c.finallyRan).toBe(true);
  });

  it("treats a reader that takes nothing for stallMs as gone: onCancel, onEnd, the source closed, the stream errored", async () => {
    const { c, src } = counted();
    let cancelled = 0;
    let ended = 0;
    const reader = sseStream(src, { readAhead: 4, stallMs: 100, onCancel: () => cancelled++, onEnd: () => ended++ }).getReader();
    await vi.waitFor(() => expect([cancelled, ended, c.finallyRan]).toEqual([1, 1, true]), { timeout: 5_000 });
    expect(c.made).toBe(4);
    await expect(async () => {
      for (;;) if ((await reader.read()).done) break;
    }).rejects.toThrow(/took no data for 100 ms/);
  });

  it("a slow reader that keeps taking events is not treated as stalled", async () => {
    const { c, src } = counted();
    let cancelled = 0;
    const reader = sseStream(src, { readAhead: 2, stallMs: 200, onCancel: () => cancelled++ }).getReader();
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 120));
      expect((await reader.read()).done).toBe(false);
    }
    expect(cancelled).toBe(0);
    expect(c.made).toBeGreaterThanOrEqual(6);
    await reader.cancel();
    expect(cancelled).toBe(1);
  });
});
