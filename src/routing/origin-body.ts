/**
 * The body the GPU origin (vLLM) is sent for a validated request: the client's fields as they came
 * (response_format, tools, tool_choice, parallel_tool_calls, tool-call history and tool results
 * included, since vLLM reads them under the same names), with the few rewrites that make the origin
 * run the same request as the edge would.
 */
import type { ChatRequest } from "../api/chat-request";
import type { CompletionRequest } from "../api/completion-request";
import { isObject, type JsonObject } from "../api/fields";
import type { Endpoint } from "./origin";

export function originBody(endpoint: Endpoint, body: JsonObject, request: CompletionRequest | ChatRequest, model: string, maxTokens: number): JsonObject {
  const upstream: JsonObject = { ...body, model, stream: true, stream_options: { include_usage: true } };
  // Our extension; vLLM would ignore it (its text prompts always parse special tokens).
  delete upstream.allow_special_tokens;
  // Our defaults, not the origin's: the same request means the same length on both paths.
  if (request.maxTokens === undefined || ("maxTokensGiven" in request && !request.maxTokensGiven)) {
    upstream.max_tokens = maxTokens;
    delete upstream.max_completion_tokens;
  }
  if (endpoint === "chat") {
    const chat = request as ChatRequest;
    // vLLM 0.10 renders the tools into the prompt even for "none"; the edge renders none then.
    if (chat.toolChoice === "none") delete upstream.tools;
    if (Array.isArray(upstream.messages)) upstream.messages = upstream.messages.map(joinTextParts);
  }
  return upstream;
}

/**
 * Text parts as one string, joined as the edge joins them: vLLM would join them with newlines, and
 * the two prompts would differ.
 */
function joinTextParts(m: unknown): unknown {
  if (!isObject(m) || !Array.isArray(m.content)) return m;
  return { ...m, content: m.content.map((p) => (isObject(p) && typeof p.text === "string" ? p.text : "")).join("") };
}
