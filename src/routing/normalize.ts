/**
 * Upstream (vLLM) chunks → our chunk shape, so a client cannot tell the origin's stream from the
 * edge's except by the x-edgelm-route header: our response id, `created` and model name, only the
 * fields we document (vLLM's stop_reason, system_fingerprint … are dropped; token_ids and
 * prompt_token_ids, asked for with return_token_ids, are kept where ours put them), `usage`
 * per our include_usage rules. Tool calls stream as OpenAI's deltas: the first piece of a call
 * has its index, id, type and name, later pieces only more `arguments` text. Also collects a
 * whole (non-streamed) response from the chunks.
 */
import type { FinishReason } from "../generate/generator";
import { isObject } from "../api/fields";
import type { ChatChunk, ChatCompletion, ChatDelta, ChatFinishReason, ChatLogprobs, ToolCall, ToolCallDelta } from "../api/chat-format";
import type { CompletionChunk, CompletionLogprobs, CompletionObject, Usage } from "./shapes";
import type { Endpoint } from "./origin";

export interface NormalizeContext {
  endpoint: Endpoint;
  id: string;
  created: number;
  model: string;
}

type Obj = Record<string, any>;
const COMPLETION_FINISH: readonly FinishReason[] = ["stop", "length"];
const CHAT_FINISH: readonly ChatFinishReason[] = ["stop", "length", "tool_calls"];

function finish<R extends string>(v: unknown, documented: readonly R[]): R | null {
  if (v === null || v === undefined) return null;
  // vLLM may report "abort"; anything we do not document becomes "stop" (the text ended).
  return documented.find((r) => r === v) ?? ("stop" as R);
}

const ids = (v: unknown): number[] | undefined => (Array.isArray(v) && v.every((x) => Number.isInteger(x)) ? (v as number[]) : undefined);

/** return_token_ids' fields of an upstream object, present only when upstream sent them. */
function idFields(o: Obj, keys: readonly ("token_ids" | "prompt_token_ids")[]): { token_ids?: number[]; prompt_token_ids?: number[] } {
  const out: { token_ids?: number[]; prompt_token_ids?: number[] } = {};
  for (const k of keys) {
    const v = ids(o[k]);
    if (v) out[k] = v;
  }
  return out;
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
      choices: [{ text: typeof c.text === "string" ? c.text : "", index: 0, logprobs: (c.logprobs as CompletionLogprobs | null) ?? null, finish_reason: finish(c.finish_reason, COMPLETION_FINISH), ...idFields(c, ["prompt_token_ids", "token_ids"]) }],
    };
  }
  const d = (c.delta ?? {}) as Obj;
  const delta: ChatDelta = {};
  if (d.role === "assistant") delta.role = "assistant";
  // vLLM writes content null (or leaves it out) beside tool calls: either way there is no text.
  if (typeof d.content === "string") delta.content = d.content;
  const calls = toolCallDeltas(d.tool_calls);
  if (calls.length) delta.tool_calls = calls;
  return {
    id: ctx.id,
    object: "chat.completion.chunk",
    created: ctx.created,
    model: ctx.model,
    choices: [{ index: 0, delta, logprobs: (c.logprobs as ChatLogprobs | null) ?? null, finish_reason: finish(c.finish_reason, CHAT_FINISH), ...idFields(c, ["token_ids"]) }],
    ...idFields(chunk, ["prompt_token_ids"]),
  };
}

/** vLLM's tool-call deltas as ours; an empty list (vLLM sends one beside plain text) is none. */
function toolCallDeltas(v: unknown): ToolCallDelta[] {
  if (!Array.isArray(v)) return [];
  return v.filter(isObject).map((t, i) => {
    const fn = isObject(t.function) ? t.function : {};
    const args = typeof fn.arguments === "string" ? fn.arguments : "";
    return {
      index: Number.isInteger(t.index) ? (t.index as number) : i,
      ...(typeof t.id === "string" ? { id: t.id } : {}),
      ...(t.type === "function" ? { type: "function" as const } : {}),
      function: typeof fn.name === "string" ? { name: fn.name, arguments: args } : { arguments: args },
    };
  });
}

/** The text a chunk's choice adds (`text` for completions, `delta.content` for chat); "" for none. */
export function choiceText(choice: unknown): string {
  if (!isObject(choice)) return "";
  if (typeof choice.text === "string") return choice.text;
  return isObject(choice.delta) && typeof choice.delta.content === "string" ? choice.delta.content : "";
}

/**
 * Whether a choice carries output: text, or a piece of a tool call. Such chunks count as tokens
 * (time to first token, the completion count when a path sends no usage).
 */
export function carriesOutput(choice: unknown): boolean {
  if (choiceText(choice) !== "") return true;
  if (!isObject(choice) || !isObject(choice.delta) || !Array.isArray(choice.delta.tool_calls)) return false;
  return choice.delta.tool_calls.some((t) => isObject(t) && isObject(t.function) && ((typeof t.function.name === "string" && t.function.name !== "") || (typeof t.function.arguments === "string" && t.function.arguments !== "")));
}

/** Our chunks (as normalizeChunk made them) → one whole response, as the edge would answer without stream. */
export function collect(chunks: (CompletionChunk | ChatChunk)[], usage: Usage, ctx: NormalizeContext): CompletionObject | ChatCompletion {
  let text = "";
  let reason: ChatFinishReason | null = null;
  if (ctx.endpoint === "completions") {
    const lps: CompletionLogprobs[] = [];
    let promptIds: number[] | undefined;
    let tokenIds: number[] | undefined;
    for (const ch of chunks as CompletionChunk[]) {
      const c = ch.choices[0];
      text += c.text;
      promptIds ??= c.prompt_token_ids;
      if (c.token_ids) (tokenIds ??= []).push(...c.token_ids);
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
    return { id: ctx.id, object: "text_completion", created: ctx.created, model: ctx.model, choices: [{ text, index: 0, logprobs, finish_reason: (reason ?? "stop") as FinishReason, ...present({ prompt_token_ids: promptIds, token_ids: tokenIds }) }], usage };
  }
  const content: ChatLogprobs["content"] = [];
  let anyLogprobs = false;
  const calls = new Map<number, { id?: string; name?: string; arguments: string }>();
  let promptIds: number[] | undefined;
  let tokenIds: number[] | undefined;
  for (const ch of chunks as ChatChunk[]) {
    const c = ch.choices[0];
    text += c.delta.content ?? "";
    promptIds ??= ch.prompt_token_ids;
    if (c.token_ids) (tokenIds ??= []).push(...c.token_ids);
    for (const t of c.delta.tool_calls ?? []) {
      const call = calls.get(t.index) ?? { arguments: "" };
      // The first piece names the call; vLLM repeats nothing later, but a repeat must not concatenate.
      call.id ??= t.id;
      call.name ??= t.function.name;
      call.arguments += t.function.arguments;
      calls.set(t.index, call);
    }
    if (c.logprobs) {
      anyLogprobs = true;
      content.push(...(c.logprobs.content ?? []));
    }
    reason = c.finish_reason ?? reason;
  }
  const toolCalls: ToolCall[] = [...calls.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, c]) => ({ id: c.id ?? `call_${ctx.id.replace(/^chatcmpl-/, "")}_${index}`, type: "function", function: { name: c.name ?? "", arguments: c.arguments } }));
  const message: ChatCompletion["choices"][0]["message"] = toolCalls.length
    ? { role: "assistant", content: text === "" ? null : text, refusal: null, tool_calls: toolCalls }
    : { role: "assistant", content: text, refusal: null };
  return {
    id: ctx.id,
    object: "chat.completion",
    created: ctx.created,
    model: ctx.model,
    choices: [{ index: 0, message, logprobs: anyLogprobs ? { content, refusal: null } : null, finish_reason: reason ?? "stop", ...present({ token_ids: tokenIds }) }],
    usage,
    ...present({ prompt_token_ids: promptIds }),
  };
}

/** Only the fields that have a value: a response without return_token_ids keeps its usual keys. */
function present<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
