/**
 * edgelm/client: a streaming client for edgelm's (or any OpenAI-compatible) completion API, on
 * fetch + eventsource-parser only, for browsers, Node ≥ 20 and Workers. See docs/client.md.
 */
export { createClient } from "./client";
export type { CallOptions, ChatStream, ClientOptions, CompletionStream, EdgelmClient, ModelList, Result } from "./client";
export { ChunkStream } from "./stream";
export type { ChunkLike } from "./stream";
export { ToolCallAccumulator } from "./tool-calls";
export { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, EdgelmError, TruncatedStreamError } from "./errors";
export type { ErrorObject } from "./errors";
export { isRetryable, retryDelayMs, serverRetryDelayMs } from "./retry";
export type { BackoffOptions } from "./retry";
export type { FetchLike, RetryInfo } from "./transport";
export type * from "./types";
