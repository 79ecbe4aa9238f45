/**
 * Tool calls through the client: a streamed answer's tool_calls deltas (OpenAI's shape: the first
 * piece of each call carries id, type and name, later pieces slices of the arguments, parallel
 * calls interleaved) are put back together on the stream; a non-streamed answer's calls are on the
 * Result; and the structured-output request fields reach the server as given.
 */
import { describe, expect, it } from "vitest";
import { createClient, ToolCallAccumulator, type ChatRequest, type FetchLike, type ToolCall } from "../../src/client/index";

const base = { id: "chatcmpl-tools", object: "chat.completion.chunk", created: 1, model: "canned" };
const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });

/** Two parallel calls, arguments split mid-token, the second call starting before the first is done. */
const TOOL_CALL_SSE = [
  chunk({ role: "assistant", content: null, tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "get_weather", arguments: "" } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: 'ty": "Par' } }] }),
  chunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "get_time", arguments: '{"tz":' } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: 'is"}' } }] }),
  chunk({ tool_calls: [{ index: 1, function: { arguments: ' "CET"}' } }] }),
  chunk({}, "tool_calls"),
  { ...base, choices: [], usage: { prompt_tokens: 20, completion_tokens: 12, total_tokens: 32 } },
]
  .map((c) => `data: ${JSON.stringify(c)}\n\n`)
  .concat("data: [DONE]\n\n")
  .join("");

const WANT: ToolCall[] = [
  { id: "call_a", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
  { id: "call_b", type: "function", function: { name: "get_time", arguments: '{"tz": "CET"}' } },
];

/** A fetch that records the request body and answers with `body`. */
function cannedFetch(body: string, contentType: string) {
  const bodies: Record<string, unknown>[] = [];
  const fetch: FetchLike = async (_url, init) => {
    bodies.push(JSON.parse(String(init.body)));
    return new Response(body, { status: 200, headers: { "content-type": contentType } });
  };
  return { fetch, bodies };
}

const REQUEST: ChatRequest = {
  messages: [
    { role: "user", content: "Weather and time in Paris?" },
    // A previous round of calls and their results, as a tool loop sends them back.
    { role: "assistant", content: null, tool_calls: [{ id: "call_0", type: "function", function: { name: "get_time", arguments: "{}" } }] },
    { role: "tool", tool_call_id: "call_0", content: '{"utc": "12:00"}' },
  ],
  tools: [
    { type: "function", function: { name: "get_weather", description: "Weather now", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }, strict: true } },
    { type: "function", function: { name: "get_time" } },
  ],
  tool_choice: "required",
  parallel_tool_calls: true,
  response_format: { type: "json_object" },
};

describe("tool calls in the client", () => {
  it("a streamed answer's tool_calls deltas accumulate into whole calls, in index order", async () => {
    const { fetch, bodies } = cannedFetch(TOOL_CALL_SSE, "text/event-stream");
    const stream = createClient({ baseURL: "http://test", fetch }).chat(REQUEST);
    const growing: string[] = [];
    for await (const _ of stream) growing.push(stream.toolCallsSoFar.map((c) => c.function.arguments).join("|"));
    // The calls are visible while they grow, not only at the end.
    expect(growing.slice(0, 4)).toEqual(["", '{"ci', '{"city": "Par', '{"city": "Par|{"tz":']);
    expect(await stream.toolCalls()).toEqual(WANT);
    expect(WANT.map((c) => JSON.parse(c.function.arguments))).toEqual([{ city: "Paris" }, { tz: "CET" }]);
    expect(stream.textSoFar).toBe("");
    expect(stream.finishReason).toBe("tool_calls");
    expect(stream.usage?.completion_tokens).toBe(12);
    expect(bodies[0]).toMatchObject({ ...REQUEST, stream: true });
  });

  it("text() and toolCalls() both read the whole stream, whichever is called first", async () => {
    const { fetch } = cannedFetch(TOOL_CALL_SSE, "text/event-stream");
    const stream = createClient({ baseURL: "http://test", fetch }).chat(REQUEST);
    expect(await stream.text()).toBe("");
    expect(await stream.toolCalls()).toEqual(WANT);
  });

  it("a completion stream has no tool calls", async () => {
    const sse = `data: ${JSON.stringify({ id: "c", object: "text_completion", created: 1, model: "m", choices: [{ text: "{}", index: 0, logprobs: null, finish_reason: "stop" }] })}\n\ndata: [DONE]\n\n`;
    const { fetch, bodies } = cannedFetch(sse, "text/event-stream");
    const stream = createClient({ baseURL: "http://test", fetch }).complete({ prompt: "x", response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "object" }, strict: true } } });
    expect(await stream.toolCalls()).toEqual([]);
    expect(stream.textSoFar).toBe("{}");
    expect(bodies[0].response_format).toEqual({ type: "json_schema", json_schema: { name: "s", schema: { type: "object" }, strict: true } });
  });

  it("a non-streamed answer's message.tool_calls are on the Result, with content null read as empty text", async () => {
    const whole = {
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1,
      model: "canned",
      choices: [{ index: 0, message: { role: "assistant", content: null, refusal: null, tool_calls: WANT }, logprobs: null, finish_reason: "tool_calls" }],
      usage: { prompt_tokens: 20, completion_tokens: 12, total_tokens: 32 },
    };
    const { fetch, bodies } = cannedFetch(JSON.stringify(whole), "application/json");
    const r = await createClient({ baseURL: "http://test", fetch }).chatCompletion(REQUEST);
    expect(r.toolCalls).toEqual(WANT);
    expect(r.text).toBe("");
    expect(r.finishReason).toBe("tool_calls");
    expect(r.data.choices[0].message.content).toBeNull();
    expect(bodies[0]).toMatchObject({ ...REQUEST, stream: false });
  });
});

describe("ToolCallAccumulator", () => {
  it("reads pieces without an index as continuing the last call, or starting a new one when they carry an id", () => {
    const acc = new ToolCallAccumulator();
    const noIndex = (d: object) => d as unknown as { index: number };
    acc.add([noIndex({ id: "a", type: "function", function: { name: "f", arguments: '{"x"' } })]);
    acc.add([noIndex({ function: { arguments: ": 1}" } })]);
    acc.add([noIndex({ id: "b", type: "function", function: { name: "g", arguments: "{}" } })]);
    expect(acc.calls).toEqual([
      { id: "a", type: "function", function: { name: "f", arguments: '{"x": 1}' } },
      { id: "b", type: "function", function: { name: "g", arguments: "{}" } },
    ]);
  });

  it("ignores what is not a list of pieces, and keeps calls in index order when they start out of order", () => {
    const acc = new ToolCallAccumulator();
    acc.add(null);
    acc.add(undefined);
    acc.add("nonsense" as unknown as []);
    acc.add([{ index: 1, id: "b", type: "function", function: { name: "g", arguments: "{}" } }]);
    acc.add([{ index: 0, id: "a", type: "function", function: { name: "f", arguments: "{}" } }]);
    expect(acc.calls.map((c) => c.id)).toEqual(["a", "b"]);
  });
});
