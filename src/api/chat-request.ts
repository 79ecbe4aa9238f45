/**
 * `POST /v1/chat/completions` request body → a validated ChatRequest. Message content is plain
 * text (a string, or text parts); it is never parsed for special tokens — that is what keeps a
 * user from injecting `<|im_end|>` or `<|endoftext|>` into the template.
 */
import type { ChatMessage } from "../tokenizer/index";
import { invalid } from "./errors";
import { Fields, isObject } from "./fields";
import { parseCommon, type CommonParams } from "./params";
import { parseStructured, type StructuredParams } from "./structured-request";

export const CHAT_ROLES = ["system", "user", "assistant", "tool"] as const;
/** Same cap as /v1/completions' logprobs (web-llm's limit; the engine reports at most this many). */
export const MAX_TOP_LOGPROBS = 5;

export interface ChatRequest extends CommonParams, StructuredParams {
  messages: ChatMessage[];
  /** Alternatives per token when `logprobs: true` (top_logprobs, default 0); undefined: no logprobs. */
  logprobs?: number;
}

export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw invalid("body", "the request body must be a JSON object", "invalid_type");
  const f = new Fields(body);
  // Newer OpenAI clients send max_completion_tokens; older ones max_tokens.
  const legacy = f.integer("max_tokens", { min: 1 });
  const common = parseCommon(f, "max_completion_tokens");
  if (legacy !== undefined && common.maxTokens !== undefined && legacy !== common.maxTokens) {
    throw invalid("max_tokens", "max_tokens and max_completion_tokens disagree; send one of them");
  }
  const messages = parseMessages(f.raw("messages"));
  const wantLogprobs = f.boolean("logprobs") ?? false;
  const top = f.integer("top_logprobs", { min: 0, max: MAX_TOP_LOGPROBS });
  if (top !== undefined && !wantLogprobs) throw invalid("top_logprobs", "top_logprobs requires logprobs: true");
  const structured = parseStructured(f);
  if (f.has("allow_special_tokens")) throw invalid("allow_special_tokens", "allow_special_tokens applies only to /v1/completions; chat message content is never parsed for special tokens", "unsupported_parameter");
  f.finish();
  return { ...common, ...structured, maxTokens: common.maxTokens ?? legacy, messages, logprobs: wantLogprobs ? (top ?? 0) : undefined };
}

function parseMessages(v: unknown): ChatMessage[] {
  if (v === undefined) throw invalid("messages", "messages is required", "missing_required_parameter");
  if (!Array.isArray(v) || v.length === 0) throw invalid("messages", "messages must be a non-empty array", "invalid_type");
  return v.map((m, i) => {
    const p = `messages[${i}]`;
    if (!isObject(m)) throw invalid(p, `${p} must be an object`, "invalid_type");
    const f = new Fields(m, `${p}.`);
    const role = f.string("role");
    if (role === undefined || !(CHAT_ROLES as readonly string[]).includes(role)) {
      throw invalid(`${p}.role`, `${p}.role must be one of ${CHAT_ROLES.join(", ")}${role === undefined ? "" : `, got "${role}"`}`);
    }
    f.string("name"); // accepted for compatibility; the templates have no place for it
    if (role === "tool") f.string("tool_call_id"); // results are rendered in order; the id is not needed
    const calls = role === "assistant" ? parseToolCalls(f.raw("tool_calls"), `${p}.tool_calls`) : undefined;
    // An assistant turn that called tools may have null content, as OpenAI sends it back.
    const content = calls?.length && f.raw("content") === undefined ? "" : parseContent(f.raw("content"), `${p}.content`);
    f.finish();
    return { role, content, ...(calls?.length ? { toolCalls: calls } : {}) };
  });
}

function parseToolCalls(v: unknown, p: string): ChatMessage["toolCalls"] {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalid(p, `${p} must be an array`, "invalid_type");
  return v.map((c, j) => {
    const q = `${p}[${j}]`;
    if (!isObject(c)) throw invalid(q, `${q} must be an object`, "invalid_type");
    const f = new Fields(c, `${q}.`);
    f.string("id");
    if ((f.string("type") ?? "function") !== "function") throw invalid(`${q}.type`, `${q}.type must be "function"`);
    const fn = f.raw("function");
    f.finish();
    if (!isObject(fn)) throw invalid(`${q}.function`, `${q}.function must be an object`, "invalid_type");
    const g = new Fields(fn, `${q}.function.`);
    const name = g.string("name");
    const args = g.string("arguments");
    g.finish();
    if (name === undefined) throw invalid(`${q}.function.name`, `${q}.function.name is required`, "missing_required_parameter");
    if (args === undefined) throw invalid(`${q}.function.arguments`, `${q}.function.arguments is required`, "missing_required_parameter");
    try {
      JSON.parse(args);
    } catch {
      throw invalid(`${q}.function.arguments`, `${q}.function.arguments must be a JSON text`);
    }
    return { name, arguments: args };
  });
}

/** A string, or OpenAI content parts of type "text" joined together. */
function parseContent(v: unknown, p: string): string {
  if (v === undefined) throw invalid(p, `${p} is required`, "missing_required_parameter");
  if (typeof v === "string") return v;
  if (!Array.isArray(v)) throw invalid(p, `${p} must be a string or an array of text parts`, "invalid_type");
  return v
    .map((part, j) => {
      const q = `${p}[${j}]`;
      if (!isObject(part)) throw invalid(q, `${q} must be an object`, "invalid_type");
      if (part.type !== "text") throw invalid(`${q}.type`, `${q}.type "${String(part.type)}" is not supported: only text parts`, "unsupported_parameter");
      const f = new Fields(part, `${q}.`);
      f.string("type");
      const text = f.string("text");
      if (text === undefined) throw invalid(`${q}.text`, `${q}.text is required`, "missing_required_parameter");
      f.finish();
      return text;
    })
    .join("");
}
