/**
 * Token events → OpenAI `chat.completion` / `chat.completion.chunk` objects. The first chunk
 * carries the assistant role, the last an empty delta with finish_reason.
 */
import type { FinishReason, GenerateEvent, TokenEvent } from "../generate/generator";
import type { Tokenizer } from "../tokenizer/index";
import { usageOf, type Usage } from "./completion-format";
import { KEEP_ALIVE } from "./sse";
import { TokenIdTracker } from "./token-ids";
import { ToolCallReader } from "./tool-calls";

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

export interface ChatLogprobs {
  content: ChatTokenLogprob[];
  refusal: null;
}

/** A finished call, as in `message.tool_calls`; `arguments` is JSON text. */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A streamed piece of a call: the first carries id, type and name; later ones append to `arguments`. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments: string };
}

export type ChatFinishReason = FinishReason | "tool_calls";

export interface ChatDelta {
  role?: "assistant";
  content?: string | null;
  tool_calls?: ToolCallDelta[];
}

export interface ChatMessageOut {
  role: "assistant";
  /** null when the answer is tool calls only. */
  content: string | null;
  refusal: null;
  tool_calls?: ToolCall[];
}

export interface ChatChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: { index: number; delta: ChatDelta; logprobs: ChatLogprobs | null; finish_reason: ChatFinishReason | null; token_ids?: number[] }[];
  usage?: Usage | null;
  /** return_token_ids: the prompt's ids (the template applied), on the first chunk only. */
  prompt_token_ids?: number[];
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: { index: number; message: ChatMessageOut; logprobs: ChatLogprobs | null; finish_reason: ChatFinishReason; token_ids?: number[] }[];
  usage: Usage;
  prompt_token_ids?: number[];
}

export interface ChatFormatContext {
  id: string;
  created: number;
  model: string;
  logprobs: boolean;
  includeUsage: boolean;
  /** For each token's raw bytes (a token may be part of a UTF-8 character). */
  tokenizer: Tokenizer;
  /** Tools were offered: calls in the text become `tool_calls`. */
  tools?: boolean;
  /** return_token_ids: the prompt's ids; the answer's ids then ride with their text. */
  promptIds?: readonly number[];
}

function bytesOf(tok: Tokenizer, id: number): number[] | null {
  const b = tok.tokenBytes(id);
  return b ? Array.from(b) : null;
}

function entry(ev: TokenEvent, tok: Tokenizer): ChatTokenLogprob {
  return {
    token: ev.token ?? ev.text,
    logprob: ev.logprob ?? 0,
    bytes: bytesOf(tok, ev.id),
    top_logprobs: (ev.topLogprobs ?? []).map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytesOf(tok, t.id) })),
  };
}

/** Calls end a turn with "tool_calls" (OpenAI's reason) unless max_tokens cut them short. */
function finishOf(reason: FinishReason, reader: ToolCallReader | undefined): ChatFinishReason {
  return reason === "stop" && reader?.toolCalls.length ? "tool_calls" : reason;
}

export async function* chatChunks(events: AsyncIterable<GenerateEvent>, ctx: ChatFormatContext): AsyncGenerator<ChatChunk | typeof KEEP_ALIVE> {
  const base = { id: ctx.id, object: "chat.completion.chunk" as const, created: ctx.created, model: ctx.model };
  const usageField = ctx.includeUsage ? { usage: null } : {};
  const reader = ctx.tools ? new ToolCallReader() : undefined;
  const tracker = ctx.promptIds && new TokenIdTracker();
  // Ids released by text that makes no chunk (tool-call text still being read) go with the next chunk.
  let owed: number[] = [];
  const chunk = (delta: ChatDelta, logprobs: ChatLogprobs | null = null, finish: ChatFinishReason | null = null): ChatChunk => {
    const ids = tracker ? { token_ids: owed } : {};
    owed = [];
    return { ...base, choices: [{ index: 0, delta, logprobs, finish_reason: finish, ...ids }], ...usageField };
  };
  yield { ...chunk({ role: "assistant", content: "" }), ...(ctx.promptIds ? { prompt_token_ids: [...ctx.promptIds] } : {}) };
  for await (const ev of events) {
    if (ev.type === "prefill") {
      yield KEEP_ALIVE;
    } else if (ev.type === "token") {
      if (tracker) owed.push(...tracker.push(ev));
      const logprobs = ctx.logprobs ? { content: [entry(ev, ctx.tokenizer)], refusal: null } : null;
      if (!reader) {
        if (ev.text === "" && !ctx.logprobs) continue;
        yield chunk({ content: ev.text }, logprobs);
        continue;
      }
      const out = reader.push(ev.text);
      if (out.content || logprobs) yield chunk(out.calls.length ? { content: out.content, tool_calls: out.calls } : { content: out.content }, logprobs);
      else if (out.calls.length) yield chunk({ tool_calls: out.calls });
    } else {
      const rest = reader?.flush();
      if (rest?.content) yield chunk({ content: rest.content });
      if (tracker) owed.push(...tracker.finish(ev));
      yield chunk({}, null, finishOf(ev.finishReason, reader));
      if (ctx.includeUsage) yield { ...base, choices: [], usage: usageOf(ev.usage, ev.timing) };
    }
  }
}

export async function collectChat(events: AsyncIterable<GenerateEvent>, ctx: ChatFormatContext): Promise<ChatCompletion> {
  let content = "";
  const lps: ChatTokenLogprob[] = [];
  const reader = ctx.tools ? new ToolCallReader() : undefined;
  const tracker = ctx.promptIds && new TokenIdTracker();
  const ids: number[] = [];
  for await (const ev of events) {
    if (ev.type === "token") {
      content += reader ? reader.push(ev.text).content : ev.text;
      if (ctx.logprobs) lps.push(entry(ev, ctx.tokenizer));
      if (tracker) ids.push(...tracker.push(ev));
    } else if (ev.type === "done") {
      const tokenIds = tracker ? { token_ids: [...ids, ...tracker.finish(ev)] } : {};
      if (reader) content += reader.flush().content;
      const calls = reader?.toolCalls ?? [];
      const message: ChatMessageOut = calls.length ? { role: "assistant", content: content || null, refusal: null, tool_calls: calls } : { role: "assistant", content, refusal: null };
      return {
        id: ctx.id,
        object: "chat.completion",
        created: ctx.created,
        model: ctx.model,
        choices: [{ index: 0, message, logprobs: ctx.logprobs ? { content: lps, refusal: null } : null, finish_reason: finishOf(ev.finishReason, reader), ...tokenIds }],
        usage: usageOf(ev.usage, ev.timing),
        ...(ctx.promptIds ? { prompt_token_ids: [...ctx.promptIds] } : {}),
      };
    }
  }
  throw new Error("generation ended without a done event");
}
