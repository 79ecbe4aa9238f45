/**
 * Wire types of the OpenAI-compatible completion API as a client sees them. Defined here rather than
 * imported from src/api so the client stays usable against any OpenAI-compatible server (whose
 * finish reasons and fields may be a superset of ours) and never pulls server code into a bundle.
 */

/** `(string & {})` keeps editor completion for the known values while accepting other servers' ones. */
export type FinishReason = "stop" | "length" | "content_filter" | "tool_calls" | "function_call" | (string & {});

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Sampling and control fields both endpoints take (docs/api.md, "Request fields"). */
export interface SamplingParams {
  /** Optional on edgelm (the served model is used); the client's default `model` fills it in. */
  model?: string;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  repetition_penalty?: number;
  stop?: string | string[] | null;
  seed?: number;
  user?: string;
  /** The client asks for `include_usage: true` unless this is given. */
  stream_options?: { include_usage?: boolean } | null;
}

export interface CompletionRequest extends SamplingParams {
  prompt: string | number[];
  echo?: boolean;
  logprobs?: number | null;
  /** edgelm extension: encode special-token text in a string prompt as the special token. */
  allow_special_tokens?: boolean;
}

export type ChatRole = "system" | "user" | "assistant";

export interface ChatMessage {
  role: ChatRole;
  content: string;
  name?: string;
}

export interface ChatRequest extends SamplingParams {
  messages: ChatMessage[];
  max_completion_tokens?: number;
  logprobs?: boolean;
  top_logprobs?: number;
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export interface CompletionChoice {
  text: string;
  index: number;
  logprobs: CompletionLogprobs | null;
  finish_reason: FinishReason | null;
}

/** One streamed `text_completion` chunk; the final usage chunk has `choices: []`. */
export interface CompletionChunk {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: CompletionChoice[];
  usage?: Usage | null;
}

/** A whole (non-streamed) completion: the same shape with a non-null finish_reason. */
export interface Completion extends CompletionChunk {
  usage?: Usage;
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

export interface ChatLogprobs {
  content: ChatTokenLogprob[] | null;
  refusal?: unknown;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: { index: number; delta: { role?: "assistant"; content?: string | null }; logprobs?: ChatLogprobs | null; finish_reason: FinishReason | null }[];
  usage?: Usage | null;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: { index: number; message: { role: "assistant"; content: string | null; refusal?: unknown }; logprobs?: ChatLogprobs | null; finish_reason: FinishReason }[];
  usage?: Usage;
}

/** The parts of the HTTP response a caller may want after the fact (status, route and rate headers). */
export interface ResponseInfo {
  status: number;
  statusText: string;
  headers: Headers;
  url: string;
}
