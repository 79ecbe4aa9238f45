/**
 * Structured output through the origin path: the router in Node over real HTTP to the fault front
 * (test/routing/fault-origin.ts), which records what vLLM would receive and replays vLLM-shaped
 * streams (vllm-streams.ts). The unmodified OpenAI SDK reads our answers through a fetch that
 * calls the router, so "the shapes parse" means what a client's code would see.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../src/routing/breaker";
import { ROUTING_DEFAULTS as D, type RoutingConfig } from "../../src/routing/config";
import { RoutingMetrics } from "../../src/routing/metrics";
import { carriesOutput } from "../../src/routing/normalize";
import { isFirstToken } from "../../src/routing/origin";
import { routeRequest, type EdgeView, type RouterDeps } from "../../src/routing/router";
import { ORIGIN_MODEL, startFaultOrigin, type FaultOrigin } from "./fault-origin";
import { content, namedCall, parallelCalls, textThenCall } from "./vllm-streams";

const SECRET = "origin-secret-structured-5d1e";
const MODEL = "edgelm-tiny";

let origin: FaultOrigin;
let edgeAsked = 0;

beforeAll(async () => {
  origin = await startFaultOrigin(SECRET);
}, 120_000);

afterAll(async () => {
  await origin?.close();
});

function deps(): RouterDeps {
  const cfg: RoutingConfig = {
    origin: { url: origin.url, model: ORIGIN_MODEL, apiKey: SECRET, connectTimeoutMs: 10_000, firstTokenTimeoutMs: 10_000, idleTimeoutMs: 10_000 },
    // Origin-only: no fallback, so every answer below is the origin's.
    tiers: new Map([["ent", "origin-only"]]),
    defaultTierMode: "auto",
    autoDefault: "edge",
    longPromptTokens: 0,
    largeMaxTokens: 0,
    breaker: { failures: 5, cooldownMs: 1000 },
    prices: { edgeUsdPerCpuMs: D.edgeUsdPerCpuMs, edgeUsdPerRequest: D.edgeUsdPerRequest, edgePrefillTokensPerS: 40, edgeDecodeTokensPerS: 8, originUsdPerGpuHour: 2, originPrefillTokensPerS: 40000, originDecodeTokensPerS: 5000 },
  };
  const edge: EdgeView = { state: "ready", queueFull: false, countPromptTokens: () => 40, cpu: () => undefined };
  return { cfg, modelId: MODEL, breaker: new CircuitBreaker(cfg.breaker), metrics: new RoutingMetrics(0), edge: () => edge, now: () => Date.now() };
}

/** A fetch that is the router: what the OpenAI SDK sends goes through routeRequest to the front. */
async function routerFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const req = new Request(input, init);
  const endpoint = new URL(req.url).pathname.endsWith("/chat/completions") ? "chat" : "completions";
  const body: unknown = await req.clone().json();
  const local = async () => (edgeAsked++, new Response("the edge was asked", { status: 500 }));
  return routeRequest({ req, endpoint, body, local, tier: "ent", log: () => {} }, deps());
}

const client = new OpenAI({ apiKey: "sk-client", baseURL: "http://edgelm.test/v1", fetch: routerFetch, maxRetries: 0 });

function post(path: "/v1/chat/completions" | "/v1/completions", body: Record<string, unknown>): Promise<Response> {
  return routerFetch(`http://edgelm.test${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

/** The last body the origin received. */
function forwarded(): Record<string, unknown> {
  expect(origin.seen.length).toBeGreaterThan(0);
  return origin.seen[origin.seen.length - 1].body;
}

function dataEvents(sse: string): unknown[] {
  return sse
    .split("\n\n")
    .filter((b) => b.startsWith("data: ") && b !== "data: [DONE]")
    .map((b) => JSON.parse(b.slice(6)));
}

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather now in a city.",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
    strict: true,
  },
} as const;
const time = { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { tz: { type: "string" } }, required: ["tz"], additionalProperties: false }, strict: true } } as const;

/** A conversation that has been through one call: an assistant turn of calls only, and its result. */
const history = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Weather in Paris?" },
  { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
  { role: "tool", tool_call_id: "call_1", content: '{"temp_c": 21}' },
  { role: "user", content: "Thanks. And the time there?" },
];

describe("what the origin receives", () => {
  it("response_format, tools, tool_choice, parallel_tool_calls and the tool history, as the client sent them", async () => {
    origin.fault = { kind: "replay", events: content('{"ok": true}') };
    const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
    const body = {
      model: MODEL,
      messages: history,
      tools: [weather, time],
      tool_choice: { type: "function", function: { name: "get_time" } },
      parallel_tool_calls: false,
      response_format: { type: "json_schema", json_schema: { name: "answer", schema, strict: true } },
      max_tokens: 32,
    };
    const res = await post("/v1/chat/completions", body);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-edgelm-route")).toBe("origin");
    const up = forwarded();
    for (const key of ["messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "max_tokens"] as const) expect(up[key], key).toEqual(body[key]);
    expect(up).toMatchObject({ model: ORIGIN_MODEL, stream: true });
    expect(edgeAsked).toBe(0);
  });

  it('tool_choice "none": tools are left out (vLLM 0.10 would render them; the edge does not), the rest goes as sent', async () => {
    origin.fault = { kind: "replay", events: content("It is noon.") };
    const res = await post("/v1/chat/completions", { model: MODEL, messages: history, tools: [weather, time], tool_choice: "none", parallel_tool_calls: true });
    expect(res.status).toBe(200);
    const up = forwarded();
    expect(up).not.toHaveProperty("tools");
    expect(up).toMatchObject({ tool_choice: "none", parallel_tool_calls: true, messages: history });
  });

  it("tools without tool_choice: forwarded, and no tool_choice is added (vLLM defaults to auto, as we do)", async () => {
    origin.fault = { kind: "replay", events: content("Hi.") };
    await post("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "Hi" }], tools: [weather] });
    const up = forwarded();
    expect(up.tools).toEqual([weather]);
    expect(up).not.toHaveProperty("tool_choice");
  });

  it("completions: response_format is forwarded", async () => {
    origin.fault = { kind: "replay", events: [{ id: "cmpl-v", object: "text_completion", created: 1, model: ORIGIN_MODEL, choices: [{ index: 0, text: "{}", logprobs: null, finish_reason: "stop" }] }] };
    const res = await post("/v1/completions", { model: MODEL, prompt: "JSON:", response_format: { type: "json_object" }, max_tokens: 8 });
    expect(res.status).toBe(200);
    expect(forwarded()).toMatchObject({ prompt: "JSON:", response_format: { type: "json_object" } });
  });

  it("text parts are joined as the edge joins them (vLLM would put newlines between them)", async () => {
    origin.fault = { kind: "replay", events: content("ok") };
    await post("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: [{ type: "text", text: "Hel" }, { type: "text", text: "lo" }] }] });
    expect(forwarded().messages).toEqual([{ role: "user", content: "Hello" }]);
  });
});

const parallelExpected = [
  { id: "chatcmpl-tool-aaa111", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
  { id: "chatcmpl-tool-bbb222", type: "function", function: { name: "get_time", arguments: '{"tz": "Europe/Paris"}' } },
];

describe("tool calls from the origin, streamed", () => {
  it("vLLM's deltas become ours: index, id, type and name first, then argument text; finish_reason tool_calls", async () => {
    origin.fault = { kind: "replay", events: parallelCalls() };
    const res = await post("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "Weather and time in Paris?" }], tools: [weather, time], stream: true });
    expect(res.status).toBe(200);
    const events = dataEvents(await res.text()) as any[];
    for (const e of events) {
      expect(e).toMatchObject({ object: "chat.completion.chunk", model: MODEL });
      expect(e.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
      expect(e).not.toHaveProperty("system_fingerprint");
      expect(e.choices[0]).not.toHaveProperty("stop_reason");
    }
    expect(events.map((e) => [e.choices[0].delta, e.choices[0].finish_reason])).toEqual([
      [{ role: "assistant", content: "" }, null],
      [{ tool_calls: [{ index: 0, id: "chatcmpl-tool-aaa111", type: "function", function: { name: "get_weather", arguments: "" } }] }, null],
      [{ tool_calls: [{ index: 0, function: { arguments: '{"city": ' } }] }, null],
      [{ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }, null],
      [{ content: "" }, null],
      [{ tool_calls: [{ index: 1, id: "chatcmpl-tool-bbb222", type: "function", function: { name: "get_time", arguments: "" } }] }, null],
      [{ tool_calls: [{ index: 1, function: { arguments: '{"tz": "Europe/' } }] }, null],
      [{ tool_calls: [{ index: 1, function: { arguments: 'Paris"}' } }] }, "tool_calls"],
    ]);
  });

  it("the OpenAI SDK's stream helper assembles the calls (arguments events, final completion)", async () => {
    origin.fault = { kind: "replay", events: parallelCalls() };
    const stream = client.chat.completions.stream({ model: MODEL, messages: [{ role: "user", content: "Weather and time in Paris?" }], tools: [weather, time] });
    const done: { name: string; arguments: string }[] = [];
    stream.on("tool_calls.function.arguments.done", (e) => done.push({ name: e.name, arguments: e.arguments }));
    const final = await stream.finalChatCompletion();
    const choice = final.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toMatchObject(parallelExpected);
    // Strict tools: the SDK also parses the arguments, so they must be whole JSON per call.
    expect(choice.message.tool_calls?.map((c) => c.type === "function" && c.function.parsed_arguments)).toEqual([{ city: "Paris" }, { tz: "Europe/Paris" }]);
    expect(done).toEqual(parallelExpected.map((c) => c.function));
  });

  it("text before the call streams as content, then the call", async () => {
    origin.fault = { kind: "replay", events: textThenCall() };
    const final = await client.chat.completions.stream({ model: MODEL, messages: [{ role: "user", content: "Weather in Oslo?" }], tools: [weather] }).finalChatCompletion();
    expect(final.choices[0].message).toMatchObject({ role: "assistant", content: "Let me check.", tool_calls: [{ id: "chatcmpl-tool-ccc333", type: "function", function: { name: "get_weather", arguments: '{"city": "Oslo"}' } }] });
    expect(final.choices[0].finish_reason).toBe("tool_calls");
  });

  it("include_usage: the usage chunk still comes last, with the cost, after the calls", async () => {
    origin.fault = { kind: "replay", events: namedCall() };
    const res = await post("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "Time?" }], tools: [time], tool_choice: { type: "function", function: { name: "get_time" } }, stream: true, stream_options: { include_usage: true } });
    const events = dataEvents(await res.text()) as any[];
    const last = events[events.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 40, completion_tokens: 12, total_tokens: 52, edgelm_route: "origin" });
    expect(events[events.length - 2].choices[0].finish_reason).toBe("tool_calls");
  });
});

describe("tool calls from the origin, whole", () => {
  it("collect: message.tool_calls (arguments joined per index), content null, finish_reason tool_calls", async () => {
    origin.fault = { kind: "replay", events: parallelCalls() };
    const res = await post("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "Weather and time in Paris?" }], tools: [weather, time] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body).toEqual({
      id: expect.stringMatching(/^chatcmpl-[0-9a-f]{32}$/),
      object: "chat.completion",
      created: expect.any(Number),
      model: MODEL,
      choices: [{ index: 0, message: { role: "assistant", content: null, refusal: null, tool_calls: parallelExpected }, logprobs: null, finish_reason: "tool_calls" }],
      usage: expect.objectContaining({ prompt_tokens: 40, completion_tokens: 12, total_tokens: 52, edgelm_route: "origin" }),
    });
  });

  it("the OpenAI SDK reads it: create() for calls after text, parse() for a named call and for a JSON schema answer", async () => {
    origin.fault = { kind: "replay", events: textThenCall() };
    const made = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Weather in Oslo?" }], tools: [weather] });
    expect(made.choices[0].message.content).toBe("Let me check.");
    expect(made.choices[0].message.tool_calls).toEqual([{ id: "chatcmpl-tool-ccc333", type: "function", function: { name: "get_weather", arguments: '{"city": "Oslo"}' } }]);

    origin.fault = { kind: "replay", events: namedCall() };
    const named = await client.chat.completions.parse({ model: MODEL, messages: [{ role: "user", content: "Time?" }], tools: [time], tool_choice: { type: "function", function: { name: "get_time" } } });
    expect(named.choices[0].message.tool_calls?.[0]).toMatchObject({ function: { name: "get_time", arguments: '{"tz": "UTC"}', parsed_arguments: { tz: "UTC" } } });
    expect(named.choices[0].finish_reason).toBe("tool_calls");

    origin.fault = { kind: "replay", events: content('{"ok": ', "true}") };
    const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
    const parsed = await client.chat.completions.parse({ model: MODEL, messages: [{ role: "user", content: "OK?" }], response_format: { type: "json_schema", json_schema: { name: "answer", schema, strict: true } } });
    expect(parsed.choices[0].message.parsed).toEqual({ ok: true });
    expect(forwarded().response_format).toEqual({ type: "json_schema", json_schema: { name: "answer", schema, strict: true } });
  });
});

describe("a tool call is output", () => {
  const call = { delta: { tool_calls: [{ index: 0, id: "c", type: "function", function: { name: "f", arguments: "" } }] } };
  it("commits the origin's answer (no waiting for a finish behind an answer of calls only)", () => {
    expect(isFirstToken({ choices: [call] })).toBe(true);
    expect(isFirstToken({ choices: [{ delta: { tool_calls: [], content: "" } }] })).toBe(false);
    expect(isFirstToken({ choices: [{ delta: { role: "assistant", content: "" } }] })).toBe(false);
  });
  it("counts as a token (time to first token, completion count without usage)", () => {
    expect(carriesOutput(call)).toBe(true);
    expect(carriesOutput({ delta: { tool_calls: [{ index: 0, function: { arguments: '{"a"' } }] } })).toBe(true);
    expect(carriesOutput({ delta: { tool_calls: [{ index: 0, function: { arguments: "" } }] } })).toBe(false);
    expect(carriesOutput({ delta: { content: "x" } })).toBe(true);
  });
});
