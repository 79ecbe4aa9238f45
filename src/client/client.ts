/**
 * `createClient`: the entry point. Streaming calls (`complete`, `chat`) return a ChunkStream at
 * once — the request starts when it is first read — and non-streaming ones a Promise of the whole
 * answer with the same helpers. Only web APIs are used (fetch, streams, AbortController,
 * TextDecoder), so the same code runs in browsers, Node ≥ 20 and Workers.
 */
import { APIConnectionError, EdgelmError } from "./errors";
import type { BackoffOptions } from "./retry";
import { ChunkStream, responseInfo } from "./stream";
import { endpointURL, requestHeaders, sendOnce, withRetries, type FetchLike, type RetryInfo, type TransportOptions } from "./transport";
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, Completion, CompletionChunk, CompletionRequest, FinishReason, ResponseInfo, ToolCall, Usage } from "./types";

export interface ClientOptions extends BackoffOptions {
  /** The server, e.g. `http://127.0.0.1:8787` or `https://api.example.com/v1`. */
  baseURL: string;
  /** Sent as `Authorization: Bearer …`. */
  apiKey?: string;
  /** Another fetch (a Worker's service binding, a test double); default the global one. */
  fetch?: FetchLike;
  /** Retries before the first event (429/503/5xx/408/409, network errors, timeouts). Default 2. */
  maxRetries?: number;
  /** Longest wait for the answer's first event, and between two events. Default 10 minutes. */
  timeoutMs?: number;
  /** Extra headers on every request. */
  headers?: HeadersInit;
  /** `model` for requests that don't name one. */
  model?: string;
  onRetry?: (info: RetryInfo) => void;
}

export interface CallOptions {
  signal?: AbortSignal;
  headers?: HeadersInit;
  maxRetries?: number;
  timeoutMs?: number;
}

export type CompletionStream = ChunkStream<CompletionChunk>;
export type ChatStream = ChunkStream<ChatCompletionChunk>;

/** A non-streamed answer with the same helpers a stream has. */
export interface Result<T> {
  data: T;
  /** Choice 0's text ("" when a chat answer's content is null). */
  text: string;
  /** Choice 0's `message.tool_calls`; empty for completions and for answers without calls. */
  toolCalls: ToolCall[];
  finishReason: FinishReason | null;
  usage: Usage | null;
  route: string | null;
  requestId: string | null;
  response: ResponseInfo;
}

export interface ModelList {
  object: "list";
  data: { id: string; object: "model"; created?: number; owned_by?: string; [extra: string]: unknown }[];
}

export interface EdgelmClient {
  /** POST /v1/completions, streamed. */
  complete(req: CompletionRequest, opts?: CallOptions): CompletionStream;
  /** POST /v1/chat/completions, streamed (the server applies the chat template). */
  chat(req: ChatRequest, opts?: CallOptions): ChatStream;
  /** POST /v1/completions, not streamed. */
  completion(req: CompletionRequest, opts?: CallOptions): Promise<Result<Completion>>;
  /** POST /v1/chat/completions, not streamed. */
  chatCompletion(req: ChatRequest, opts?: CallOptions): Promise<Result<ChatCompletion>>;
  /** GET /v1/models. */
  models(opts?: CallOptions): Promise<ModelList>;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

export function createClient(options: ClientOptions): EdgelmClient {
  if (!options || typeof options.baseURL !== "string" || options.baseURL === "") throw new EdgelmError("createClient: baseURL is required");
  // Late-bound: picks up a replaced global fetch, and calling it detached avoids "Illegal invocation" in browsers.
  const defaultFetch: FetchLike = (input, init) => globalThis.fetch(input, init);
  const transportFor = (call: CallOptions = {}): TransportOptions => ({
    baseURL: options.baseURL,
    apiKey: options.apiKey,
    fetch: options.fetch ?? defaultFetch,
    maxRetries: call.maxRetries ?? options.maxRetries ?? 2,
    timeoutMs: call.timeoutMs ?? options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    headers: mergeHeaders(options.headers, call.headers),
    initialRetryDelayMs: options.initialRetryDelayMs,
    maxRetryDelayMs: options.maxRetryDelayMs,
    onRetry: options.onRetry,
  });
  const withModel = <R extends { model?: string }>(req: R): R => (req.model === undefined && options.model !== undefined ? { ...req, model: options.model } : req);
  const streamed = <R extends { stream_options?: unknown }>(req: R) => ({
    ...withModel(req as R & { model?: string }),
    stream: true,
    // Usage is only sent when asked for; a caller who set stream_options decides for itself.
    stream_options: req.stream_options === undefined ? { include_usage: true } : req.stream_options,
  });

  return {
    complete(req, opts = {}) {
      return new ChunkStream<CompletionChunk>({
        transport: transportFor(opts),
        url: endpointURL(options.baseURL, "/completions"),
        body: streamed(req),
        signal: opts.signal,
        textOf: (c) => c.choices[0]?.text ?? "",
      });
    },
    chat(req, opts = {}) {
      return new ChunkStream<ChatCompletionChunk>({
        transport: transportFor(opts),
        url: endpointURL(options.baseURL, "/chat/completions"),
        body: streamed(req),
        signal: opts.signal,
        textOf: (c) => c.choices[0]?.delta?.content ?? "",
        toolCallsOf: (c) => c.choices[0]?.delta?.tool_calls,
      });
    },
    async completion(req, opts = {}) {
      const r = await fetchJSON<Completion>(transportFor(opts), "POST", endpointURL(options.baseURL, "/completions"), { ...withModel(req), stream: false }, opts.signal);
      return toResult(r.data, r.res, r.data.choices?.[0]?.text ?? "", []);
    },
    async chatCompletion(req, opts = {}) {
      const r = await fetchJSON<ChatCompletion>(transportFor(opts), "POST", endpointURL(options.baseURL, "/chat/completions"), { ...withModel(req), stream: false }, opts.signal);
      const message = r.data.choices?.[0]?.message;
      return toResult(r.data, r.res, message?.content ?? "", Array.isArray(message?.tool_calls) ? message.tool_calls : []);
    },
    async models(opts = {}) {
      return (await fetchJSON<ModelList>(transportFor(opts), "GET", endpointURL(options.baseURL, "/models"), undefined, opts.signal)).data;
    },
  };
}

function mergeHeaders(a: HeadersInit | undefined, b: HeadersInit | undefined): Headers {
  const h = new Headers(a);
  new Headers(b).forEach((v, k) => h.set(k, v));
  return h;
}

/** One request whose whole JSON body is the answer; reading the body is part of the attempt, so it is retried too. */
async function fetchJSON<T>(transport: TransportOptions, method: string, url: string, body: unknown, signal: AbortSignal | undefined): Promise<{ data: T; res: Response }> {
  const call = new AbortController();
  const onAbort = () => call.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const { value, attempt } = await withRetries(transport, call.signal, async (a) => {
      const headers = requestHeaders(transport, "application/json");
      const res = await sendOnce(transport, url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }, a.controller.signal);
      const text = await res.text();
      try {
        return { data: JSON.parse(text) as T, res };
      } catch {
        throw new APIConnectionError(`the server's answer is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
      }
    });
    attempt.release();
    return value;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

function toResult<T extends { id?: string; choices?: { finish_reason?: FinishReason | null }[]; usage?: Usage }>(data: T, res: Response, text: string, toolCalls: ToolCall[]): Result<T> {
  return {
    data,
    text,
    toolCalls,
    finishReason: data.choices?.[0]?.finish_reason ?? null,
    usage: data.usage ?? null,
    route: res.headers.get("x-edgelm-route"),
    requestId: res.headers.get("x-request-id") ?? data.id ?? null,
    response: responseInfo(res),
  };
}
