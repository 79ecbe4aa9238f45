/**
 * The prompt size the router decides with (src/worker/edge-view.ts): with tools the edge renders a
 * longer prompt, so the count must grow with them (long_prompt, CPU budget, cost) — unless
 * tool_choice is "none", when no tools are rendered. Counted exactly once the model is loaded,
 * estimated before.
 */
import { describe, expect, it } from "vitest";
import { parseChatRequest } from "../../src/api/chat-request";
import type { ModelState, ServedModel } from "../../src/api/deps";
import { GenerationQueue } from "../../src/api/queue";
import { Tokenizer, encodeChat } from "../../src/tokenizer/node";
import { edgeView } from "../../src/worker/edge-view";
import type { WorkerConfig } from "../../src/worker/env";

const tok = Tokenizer.arcade100k();
const ready: ModelState = { status: "ready", model: { id: "m", tokenizer: tok, chatTemplate: "zephyr", created: 0 } as unknown as ServedModel };
const loading: ModelState = { status: "loading", message: "loading" };
const count = (state: ModelState, body: object) => edgeView(state, new GenerationQueue(), {} as WorkerConfig).countPromptTokens("chat", parseChatRequest(body));

const messages = [{ role: "user", content: "What is the weather in Paris?" }];
const tools = [
  { type: "function", function: { name: "get_weather", description: "The weather now in a city.", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } },
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { tz: { type: "string" } } } } },
];

describe("prompt tokens with tools", () => {
  it("loaded: exactly the edge's prompt, tools included unless tool_choice is none", () => {
    const plain = count(ready, { messages });
    const withTools = count(ready, { messages, tools });
    const request = parseChatRequest({ messages, tools });
    expect(withTools).toBe(encodeChat(tok, request.messages, { template: "zephyr", tools: request.tools }).length);
    expect(withTools).toBeGreaterThan(plain + 100);
    expect(count(ready, { messages, tools, tool_choice: "none" })).toBe(plain);
    expect(count(ready, { messages, tools, tool_choice: "required" })).toBe(withTools);
  });

  it("before the model loads: the estimate grows with the tools too, and stays near the real count", () => {
    const exact = count(ready, { messages, tools });
    const estimate = count(loading, { messages, tools });
    expect(estimate).toBeGreaterThan(count(loading, { messages }) + 100);
    expect(count(loading, { messages, tools, tool_choice: "none" })).toBe(count(loading, { messages }));
    expect(Math.abs(estimate - exact) / exact).toBeLessThan(0.3);
  });

  it("a call in the history counts its arguments", () => {
    const history = [...messages, { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: JSON.stringify({ city: "Paris, the capital of France, on the Seine" }) } }] }];
    expect(count(loading, { messages: history })).toBeGreaterThan(count(loading, { messages }) + 10);
  });
});
