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

/** A JSON Schema, as the server receives it; the client neither reads nor checks it. */
export type JsonSchema = { [keyword: string]: unknown };

/**
 * `response_format`: free text (the default), any JSON object, or JSON matching a schema. Servers
 * that constrain decoding guarantee the shape only when the answer is not cut off (finish_reason
 * "length" leaves partial JSON).
 */
export type ResponseFormat = { type: "text" } | { type: "json_object" } | { type: "json_schema"; json_schema: JsonSchemaFormat };

export interface JsonSchemaFormat {
  /** 1-64 of `[A-Za-z0-9_-]`. */
  name: string;
  description?: string;
  schema: JsonSchema;
  strict?: boolean | null;
}

export interface CompletionRequest extends SamplingParams {
  prompt: string | number[];
  echo?: boolean;
  logprobs?: number | null;
  /** edgelm extension: encode special-token text in a string prompt as the special token. */
  allow_special_tokens?: boolean;
  response_format?: ResponseFormat;
}

export type ChatRole = "system" | "user" | "assistant" | "tool";

/** A finished tool call; `arguments` is JSON text (parse it yourself: a model may get it wrong). */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/**
 * A streamed piece of a tool call. The first piece of call `index` carries its id, type and name;
 * the following ones add to `arguments`. Optional fields are optional because servers differ in
 * what they repeat.
 */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function?: { name?: string; arguments?: string };
}

export interface SystemMessage {
  role: "system";
  content: string;
  name?: string;
}

export interface UserMessage {
  role: "user";
  content: string;
  name?: string;
}

export interface AssistantMessage {
  role: "assistant";
  /** null when the turn was tool calls only, as servers send it back. */
  content: string | null;
  name?: string;
  tool_calls?: ToolCall[];
}

/** The result of a tool call, answering the assistant's call with the same id. */
export interface ToolMessage {
  role: "tool";
  content: string;
  tool_call_id: string;
}

export type ChatMessage = SystemMessage | UserMessage | AssistantMessage | ToolMessage;

export interface FunctionDefinition {
  /** 1-64 of `[A-Za-z0-9_-]`. */
  name: string;
  description?: string;
  /** The arguments' JSON Schema; omitted: a function without arguments. */
  parameters?: JsonSchema;
  strict?: boolean | null;
}

export interface ChatTool {
  type: "function";
  function: FunctionDefinition;
}

/** "none": answer in text; "auto": the model decides; "required": at least one call; an object: that function. */
export type ToolChoice = "none" | "auto" | "required" | { type: "function"; function: { name: string } };

export interface ChatRequest extends SamplingParams {
  messages: ChatMessage[];
  max_completion_tokens?: number;
  logprobs?: boolean;
  top_logprobs?: number;
  response_format?: ResponseFormat;
  tools?: ChatTool[];
  tool_choice?: ToolChoice;
  /** Whether one answer may make several calls; servers default to true. */
  parallel_tool_calls?: boolean;
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

export interface ChatCompletionDelta {
  role?: "assistant";
  content?: string | null;
  tool_calls?: ToolCallDelta[];
  refusal?: string | null;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: { index: number; delta: ChatCompletionDelta; logprobs?: ChatLogprobs | null; finish_reason: FinishReason | null }[];
  usage?: Usage | null;
}

/** An answer's message; with tool calls, finish_reason is "tool_calls" and content may be null. */
export interface ChatCompletionMessage {
  role: "assistant";
  content: string | null;
  refusal?: unknown;
  tool_calls?: ToolCall[];
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: { index: number; message: ChatCompletionMessage; logprobs?: ChatLogprobs | null; finish_reason: FinishReason }[];
  usage?: Usage;
}

/** The parts of the HTTP response a caller may want after the fact (status, route and rate headers). */
export interface ResponseInfo {
  status: number;
  statusText: string;
  headers: Headers;
  url: string;
}
