/**
 * Structured output over real HTTP, read by the unmodified OpenAI SDK: JSON Schema and JSON mode on
 * both endpoints, streamed and whole; tool calls in OpenAI's message and delta shapes.
 */
import Ajv from "ajv";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE } from "./helpers";

const ajv = new Ajv({ strict: false });
let server: RunningServer;
let client: OpenAI;

const PERSON = {
  type: "object",
  properties: { name: { type: "string", maxLength: 10 }, age: { type: "integer", minimum: 0, maximum: 120 }, city: { enum: ["Paris", "Oslo"] } },
  required: ["name", "age", "city"],
  additionalProperties: false,
};

const TOOLS: OpenAI.Chat.Completions.ChatCompletionFunctionTool[] = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather in a city",
      parameters: { type: "object", properties: { city: { type: "string", maxLength: 12 }, unit: { enum: ["C", "F"] } }, required: ["city", "unit"], additionalProperties: false },
    },
  },
  {
    type: "function",
    function: { name: "add", parameters: { type: "object", properties: { a: { type: "integer", minimum: 0, maximum: 99 }, b: { type: "integer", minimum: 0, maximum: 99 } }, required: ["a", "b"] } },
  },
];
const params = (name: string) => TOOLS.find((t) => t.function.name === name)!.function.parameters!;

beforeAll(async () => {
  const path = await synthGGUF("tiny", "f32");
  server = await startServer({ modelPath: path, port: 0, host: "127.0.0.1", modelId: "tiny", engine: "wasm", threads: 1, chatTemplate: "zephyr", log: () => {} });
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 120_000);

afterAll(async () => {
  await server?.close();
});

const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: "user", content: "Who are you? Answer in JSON." }];

describe("response_format", () => {
  it("json_schema, whole: the content validates and finish_reason is stop", async () => {
    const validate = ajv.compile(PERSON);
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create({ model: "tiny", messages, seed, max_tokens: 200, response_format: { type: "json_schema", json_schema: { name: "person", schema: PERSON, strict: true } } });
      expect(r.choices[0].finish_reason).toBe("stop");
      expect(validate(JSON.parse(r.choices[0].message.content!))).toBe(true);
    }
  });

  it("json_schema, streamed through the SDK's stream helper", async () => {
    const stream = client.chat.completions.stream({ model: "tiny", messages, seed: 5, max_tokens: 200, response_format: { type: "json_schema", json_schema: { name: "person", schema: PERSON } } });
    const done = await stream.finalChatCompletion();
    expect(done.choices[0].finish_reason).toBe("stop");
    expect(ajv.validate(PERSON, JSON.parse(done.choices[0].message.content!))).toBe(true);
  });

  it("concurrent requests in batched steps each keep their own mask", async () => {
    const { SCHEMAS } = await import("../generate/schemas");
    const names = ["flat", "enums", "topArray", "optional"];
    const counter = async (name: string) => Number(new RegExp(`^${name} (\\d+)`, "m").exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? NaN);
    const [steps0, seqs0] = [await counter("edgelm_batch_steps_total"), await counter("edgelm_batch_sequences_total")];
    const answers = await Promise.all(
      names.map((n, i) => client.chat.completions.create({ model: "tiny", messages, seed: 10 + i, max_tokens: 200, response_format: { type: "json_schema", json_schema: { name: n, schema: SCHEMAS[n] } } })),
    );
    answers.forEach((r, i) => {
      expect(r.choices[0].finish_reason).toBe("stop");
      expect(ajv.validate(SCHEMAS[names[i]], JSON.parse(r.choices[0].message.content!)), names[i]).toBe(true);
    });
    // More sequences than steps: some steps carried several of these requests at once.
    expect((await counter("edgelm_batch_sequences_total")) - seqs0).toBeGreaterThan((await counter("edgelm_batch_steps_total")) - steps0);
  });

  it("json_object on /v1/completions gives a JSON object", async () => {
    const r = await client.completions.create({ model: "tiny", prompt: "JSON:", seed: 4, max_tokens: 200, response_format: { type: "json_object" } } as OpenAI.Completions.CompletionCreateParamsNonStreaming);
    if (r.choices[0].finish_reason === "stop") expect(typeof JSON.parse(r.choices[0].text)).toBe("object");
    else expect(r.choices[0].text.startsWith("{")).toBe(true);
  });

  it("max_tokens cuts the value: finish_reason length", async () => {
    const r = await client.chat.completions.create({ model: "tiny", messages, seed: 1, max_tokens: 3, response_format: { type: "json_schema", json_schema: { name: "person", schema: PERSON } } });
    expect(r.choices[0].finish_reason).toBe("length");
    expect(r.choices[0].message.content!.startsWith("{")).toBe(true);
  });

  it("400s: an unsupported keyword names its path; stop cannot be combined", async () => {
    const bad = await client.chat.completions
      .create({ model: "tiny", messages, response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { d: { type: "string", format: "date" } } } } } })
      .catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.param).toBe("response_format.json_schema.schema#/properties/d/format");
    const stop = await client.chat.completions.create({ model: "tiny", messages, stop: ["}"], response_format: { type: "json_object" } }).catch((e) => e);
    expect(stop).toBeInstanceOf(OpenAI.BadRequestError);
    expect(stop.param).toBe("stop");
  });
});

describe("tool calls", () => {
  it("tool_choice required, whole: tool_calls with a known name and arguments that validate", async () => {
    for (const seed of [1, 2, 3, 4]) {
      const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Weather in Oslo?" }], seed, max_tokens: 200, tools: TOOLS, tool_choice: "required", parallel_tool_calls: false });
      const c = r.choices[0];
      expect(c.finish_reason).toBe("tool_calls");
      expect(c.message.content).toBeNull();
      expect(c.message.tool_calls).toHaveLength(1);
      const call = c.message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
      expect(call.type).toBe("function");
      expect(call.id).toMatch(/^call_/);
      expect(["get_weather", "add"]).toContain(call.function.name);
      expect(ajv.validate(params(call.function.name), JSON.parse(call.function.arguments))).toBe(true);
    }
  });

  it("a named tool_choice calls that tool; streamed deltas are OpenAI's and the SDK assembles them", async () => {
    const body = { model: "tiny", messages: [{ role: "user" as const, content: "2+3?" }], seed: 7, max_tokens: 200, tools: TOOLS, tool_choice: { type: "function" as const, function: { name: "add" } } };
    const done = await client.chat.completions.stream(body).finalChatCompletion();
    const call = done.choices[0].message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(done.choices[0].finish_reason).toBe("tool_calls");
    expect(call.function.name).toBe("add");
    expect(ajv.validate(params("add"), JSON.parse(call.function.arguments))).toBe(true);
    // The same request on the wire: the first tool_calls delta names the call, later ones only append arguments.
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
    const chunks = parseSSE(await res.text()).events as OpenAI.Chat.Completions.ChatCompletionChunk[];
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(deltas[0]).toMatchObject({ index: 0, type: "function", function: { name: "add", arguments: "" } });
    expect(deltas[0].id).toMatch(/^call_/);
    expect(deltas.slice(1).filter((d) => d.index !== 0 || d.id !== undefined || d.function?.name !== undefined)).toEqual([]);
    expect(deltas.map((d) => d.function?.arguments ?? "").join("")).toBe(call.function.arguments);
    expect(chunks.some((c) => (c.choices[0]?.delta.content ?? "") !== "")).toBe(false);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe("tool_calls");
  });

  it("parallel calls, when allowed, are each constrained", async () => {
    let sawSeveral = false;
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Do both." }], seed, max_tokens: 250, tools: TOOLS, tool_choice: "required", parallel_tool_calls: true });
      if (r.choices[0].finish_reason !== "tool_calls") continue;
      const calls = r.choices[0].message.tool_calls as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall[];
      if (calls.length > 1) sawSeveral = true;
      for (const c of calls) expect(ajv.validate(params(c.function.name), JSON.parse(c.function.arguments))).toBe(true);
    }
    // A random model picks the newline between calls or the end about evenly.
    expect(sawSeveral).toBe(true);
  });

  it("tool_choice auto: text or calls, each well formed; a tool result in the history is accepted", async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = await client.chat.completions.create({
        model: "tiny",
        seed,
        max_tokens: 60,
        tools: TOOLS,
        messages: [
          { role: "user", content: "Weather?" },
          { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo","unit":"C"}' } }] },
          { role: "tool", tool_call_id: "call_1", content: "-3 C, snow" },
        ],
      });
      const c = r.choices[0];
      if (c.finish_reason === "tool_calls") {
        for (const t of c.message.tool_calls as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall[]) expect(ajv.validate(params(t.function.name), JSON.parse(t.function.arguments))).toBe(true);
      } else {
        expect(typeof c.message.content).toBe("string");
        expect(c.message.content!.startsWith("<tool_call>\n")).toBe(false);
      }
    }
  });
});
