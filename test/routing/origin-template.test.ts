/**
 * The origin's chat template (origin/chat-template-zephyr-tools.jinja) renders the prompt the edge
 * renders. One client body goes both ways: the edge's way (parseChatRequest, then renderChatText
 * with the tools unless tool_choice is "none"), and the origin's (originBody, what vLLM 0.10.1.1
 * makes of the request before its template runs, then the template in @huggingface/jinja, which
 * trims blocks and serializes tojson with Python's separators as transformers does).
 *
 * The manifests are checked to mount this file where --chat-template points, beside the tool flags.
 *
 * Not covered, because both sides here are JavaScript: Python keeps 1.0 a float (json.dumps writes
 * "1.0", we write "1") and keeps integer-like object keys in their order (JavaScript moves them first).
 */
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";
import { describe, expect, it } from "vitest";
import { parseChatRequest } from "../../src/api/chat-request";
import { isObject, type JsonObject } from "../../src/api/fields";
import { originBody } from "../../src/routing/origin-body";
import { Tokenizer, renderChatText } from "../../src/tokenizer/node";

const template = new Template(readFileSync(new URL("../../origin/chat-template-zephyr-tools.jinja", import.meta.url), "utf8"));
const tok = Tokenizer.arcade100k();

function edgePrompt(body: JsonObject): string {
  const r = parseChatRequest(body);
  return renderChatText(tok, r.messages, { template: "zephyr", tools: r.toolChoice === "none" ? undefined : r.tools });
}

/**
 * What vLLM hands the template: each tool as its pydantic model dumps it (description and
 * parameters null when absent), message content as a string ("" for null), each call's arguments
 * parsed from their JSON text, tool results with their tool_call_id.
 */
function vllmInputs(upstream: JsonObject): Record<string, unknown> {
  const tools = Array.isArray(upstream.tools)
    ? upstream.tools.map((t: any) => ({ type: "function", function: { description: null, parameters: null, ...t.function } }))
    : undefined;
  const messages = (upstream.messages as JsonObject[]).map((m) => {
    const out: JsonObject = { role: m.role, content: typeof m.content === "string" ? m.content : "" };
    if (Array.isArray(m.tool_calls)) out.tool_calls = m.tool_calls.map((c: any) => ({ ...c, function: { name: c.function.name, arguments: JSON.parse(c.function.arguments) } }));
    if (typeof m.tool_call_id === "string") out.tool_call_id = m.tool_call_id;
    return out;
  });
  return { messages, tools, add_generation_prompt: true, bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" };
}

function originPrompt(body: JsonObject): string {
  const request = parseChatRequest(body);
  const upstream = originBody("chat", body, request, "stabilityai/stablelm-2-zephyr-1_6b", 256);
  return template.render(vllmInputs(upstream));
}

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Météo à l'instant <pour une ville> & \"guillemets\"",
    parameters: { type: "object", properties: { city: { type: "string", description: "e.g. Zürich" }, days: { type: "integer", minimum: 1, maximum: 7 } }, required: ["city"] },
    strict: true,
  },
};
const bare = { type: "function", function: { name: "ping" } };
const empty = { type: "function", function: { name: "noop", description: "", parameters: {} } };

const conversations: [string, JsonObject][] = [
  ["system and user", { messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "Hi" }] }],
  ["without a system turn", { messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello!" }, { role: "user", content: "Bye" }] }],
  ["tools, no system turn: a system turn of their own", { messages: [{ role: "user", content: "Weather in Zürich?" }], tools: [weather, bare, empty] }],
  ["tools after the system text", { messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "Weather?" }], tools: [weather], tool_choice: "required" }],
  [
    "a call and its result in the history, two parallel calls after text",
    {
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Weather in Paris and Oslo?" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","days":2}' } }] },
        { role: "tool", tool_call_id: "call_1", content: '{"temp_c": 21}' },
        {
          role: "assistant",
          content: "Now Oslo.",
          tool_calls: [
            { id: "call_2", type: "function", function: { name: "get_weather", arguments: '{ "city" : "Oslo" }' } },
            { id: "call_3", type: "function", function: { name: "ping", arguments: "{}" } },
          ],
        },
        { role: "tool", tool_call_id: "call_2", content: "-3 °C" },
        { role: "tool", tool_call_id: "call_3", content: "pong" },
        { role: "user", content: "Thanks." },
      ],
      tools: [weather, bare],
      parallel_tool_calls: true,
    },
  ],
  [
    'tool_choice "none": no tools, the history still as calls and results, no system turn',
    {
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
        { role: "tool", tool_call_id: "call_1", content: "sunny" },
      ],
      tools: [weather],
      tool_choice: "none",
    },
  ],
  ["text parts", { messages: [{ role: "user", content: [{ type: "text", text: "Line one" }, { type: "text", text: " and the rest" }] }], tools: [bare], tool_choice: { type: "function", function: { name: "ping" } } }],
];

describe("origin chat template = the edge's zephyr prompt", () => {
  for (const [name, body] of conversations) {
    it(name, () => {
      const edge = edgePrompt(body);
      expect(originPrompt(body)).toBe(edge);
      // The comparison is worth something only if the edge rendered what the case is about.
      const withTools = Array.isArray(body.tools) && body.tool_choice !== "none";
      expect(edge.includes("<tools>\n")).toBe(withTools);
      const calls = (body.messages as JsonObject[]).some((m) => isObject(m) && Array.isArray(m.tool_calls));
      expect(edge.includes('<tool_call>\n{"name": "get_weather", "arguments": {"city": ')).toBe(calls);
    });
  }

  it("the tool block as the model sees it", () => {
    expect(originPrompt({ messages: [{ role: "user", content: "Hi" }], tools: [bare] })).toBe(
      "<|system|>\nYou can call these functions, described as JSON one per line:\n<tools>\n" +
        '{"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}\n</tools>\n' +
        'To call a function, answer with only this, once per call:\n<tool_call>\n{"name": "the function name", "arguments": {the arguments as a JSON object}}\n</tool_call><|endoftext|>\n' +
        "<|user|>\nHi<|endoftext|>\n<|assistant|>\n",
    );
  });
});

describe("the zephyr origin is deployed with this template and the tool flags", () => {
  const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");
  const flags = ["--chat-template=/templates/chat-template-zephyr-tools.jinja", "--chat-template-content-format=string", "--enable-auto-tool-choice", "--tool-call-parser=hermes"];

  it("docker compose: the zephyr service mounts the file where --chat-template points", () => {
    const zephyr = read("origin/docker-compose.yml").split(/^ {2}stablelm-2-zephyr-1_6b:$/m)[1];
    for (const f of flags) expect(zephyr, f).toContain(`- ${f}`);
    expect(zephyr).toContain("- ./chat-template-zephyr-tools.jinja:/templates/chat-template-zephyr-tools.jinja:ro");
  });

  it("k8s: the ConfigMap made from the file is mounted where --chat-template points", () => {
    const k8s = read("origin/k8s/stablelm-2-zephyr-1_6b.yaml");
    for (const f of flags) expect(k8s, f).toContain(`- ${f}`);
    expect(k8s).toContain("--from-file=origin/chat-template-zephyr-tools.jinja");
    expect(k8s).toMatch(/- \{ name: chat-template, mountPath: \/templates, readOnly: true \}/);
    expect(k8s).toMatch(/configMap: \{ name: chat-template-zephyr-tools \}/);
  });
});
