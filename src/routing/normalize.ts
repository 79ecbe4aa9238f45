/**
 * Upstream (vLLM) chunks → our chunk shape, so a client cannot tell the origin's stream from the
 * edge's except by the x-edgelm-route header: our response id, `created` and model name, only the
 * fields we document (vLLM's stop_reason, token_ids, system_fingerprint … are dropped), `usage`
 * per our include_usage rules. Also collects a whole (non-streamed) response from the chunks.
 */
import type { FinishReason } from "../generate/generator";
import { isObject } from "../api/fields";
import type { ChatChunk, ChatCompletion, ChatFinishReason, ChatLogprobs } from "../api/chat-format";
import type { CompletionChunk, CompletionLogprobs, CompletionObject, Usage } from "./shapes";
import type { Endpoint } from "./origin";

export interface NormalizeContext {
  endpoint: Endpoint;
  id: string;
  created: number;
  model: string;
}

type Obj = Record<string, any>;
const FINISH: readonly string[] = ["stop", "length", "content_filter", "tool_calls", "function_call"];

function finish(v: unknown): FinishReason | null {
  if (v === null || v === undefined) return null;
  // vLLM may report "abort"; anything we do not document becomes "stop" (the text ended).
  return (FINISH.includes(String(v)) ? v : "stop") as FinishReason;
}

/** The upstream usage as ours (the three OpenAI counts only); undefined when absent. */
export function upstreamUsage(chunk: Obj): Usage | undefined {
  const u = chunk.usage;
  if (typeof u !== "object" || u === null) return undefined;
  const p = Number(u.prompt_tokens) || 0;
  const c = Number(u.completion_tokens) || 0;
  return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c };
}

/** One upstream chunk → our chunk without `usage` (the caller adds it), or undefined when it carries no choice. */
export function normalizeChunk(chunk: Obj, ctx: NormalizeContext): CompletionChunk | ChatChunk | undefined {
  const c = Array.isArray(chunk.choices) ? (chunk.choices[0] as Obj | undefined) : undefined;
  if (!c) return undefined;
  if (ctx.endpoint === "completions") {
    return {
      id: ctx.id,
      object: "text_completion",
      created: ctx.created,
      model: ctx.model,
      choices: [{ text: typeof c.text === "string" ? c.text : "", index: 0, logprobs: (c.logprobs as CompletionLogprobs | null) ?? null, finish_reason: finish(c.finish_reason) }],
    };
  }
  const d = (c.delta ?? {}) as Obj;
  const delta: ChatChunk["choices"][0]["delta"] = {};
  if (d.role === "assistant") delta.role = "assistant";
  if (typeof d.content === "string") delta.content = d.content;
  return {
    id: ctx.id,
    object: "chat.completion.chunk",
    created: ctx.created,
    model: ctx.model,
    choices: [{ index: 0, delta, logprobs: (c.logprobs as ChatLogprobs | null) ?? null, finish_reason: finish(c.finish_reason) }],
  };
}

/** The text a chunk's choice adds (`text` for completions, `delta.content` for chat); "" for none. */
export function choiceText(choice: unknown): string {
  if (!isObject(choice)) return "";
  if (typeof choice.text === "string") return choice.text;
  return isObject(choice.delta) && typeof choice.delta.content === "string" ? choice.delta.content : "";
}

/** Our chunks (as normalizeChunk made them) → one whole response, as the edge would answer without stream. */
export function collect(chunks: (CompletionChunk | ChatChunk)[], usage: Usage, ctx: NormalizeContext): CompletionObject | ChatCompletion {
  let text = "";
  let reason: ChatFinishReason | null = null;
  if (ctx.endpoint === "completions") {
    const lps: CompletionLogprobs[] = [];
    for (const ch of chunks as CompletionChunk[]) {
      const c = ch.choices[0];
      text += c.text;
      if (c.logprobs) lps.push(c.logprobs);
      reason = c.finish_reason ?? reason;
    }
    const logprobs = lps.length
      ? {
          tokens: lps.flatMap((l) => l.tokens ?? []),
          token_logprobs: lps.flatMap((l) => l.token_logprobs ?? []),
          top_logprobs: lps.flatMap((l) => l.top_logprobs ?? []),
          text_offset: lps.flatMap((l) => l.text_offset ?? []),
        }
      : null;
    return { id: ctx.id, object: "text_completion", created: ctx.created, model: ctx.model, choices: [{ text, index: 0, logprobs, finish_reason: (reason ?? "stop") as FinishReason }], usage };
  }
  const content: ChatLogprobs["content"] = [];
  let anyLogprobs = false;
  for (const ch of chunks as ChatChunk[]) {
    const c = ch.choices[0];
    text += c.delta.content ?? "";
    if (c.logprobs) {
      anyLogprobs = true;
      content.push(...(c.logprobs.content ?? []));
    }
    reason = c.finish_reason ?? reason;
  }
  return {
    id: ctx.id,
    object: "chat.completion",
    created: ctx.created,
    model: ctx.model,
    choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: anyLogprobs ? { content, refusal: null } : null, finish_reason: reason ?? "stop" }],
    usage,
  };
}
