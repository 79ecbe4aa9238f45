/**
 * A streamed completion or chat: an async iterable of the server's chunks, plus what a caller
 * usually wants afterwards (the text, tool calls, finish reason, usage, route, request id). Retries happen only
 * while opening — until the first event arrives — so a chunk once yielded is never repeated; after
 * that, a stream that breaks off without [DONE] and without a finish_reason throws
 * TruncatedStreamError instead of passing a partial answer off as a whole one.
 */
import { SseReader, type SseEvent } from "../util";
import { APIConnectionError, APIError, APIUserAbortError, EdgelmError, TruncatedStreamError } from "./errors";
import { childController } from "./signals";
import { classify, requestHeaders, sendOnce, withRetries, type Attempt, type TransportOptions } from "./transport";
import { ToolCallAccumulator } from "./tool-calls";
import type { FinishReason, ResponseInfo, ToolCall, ToolCallDelta, Usage } from "./types";

/** What the stream needs to know about a chunk shape (completion or chat). */
export interface ChunkLike {
  id?: string;
  model?: string;
  choices?: { finish_reason?: FinishReason | null }[];
  usage?: Usage | null;
}

export interface StreamSpec<C> {
  transport: TransportOptions;
  url: string;
  body: unknown;
  signal?: AbortSignal;
  /** The text a chunk adds (choice 0; the API serves n = 1). */
  textOf(chunk: C): string;
  /** The tool-call pieces a chunk adds (chat streams; choice 0). */
  toolCallsOf?(chunk: C): readonly ToolCallDelta[] | null | undefined;
}

const DONE = Symbol("done");

/** A line or event bigger than this is a broken or hostile stream, not a token. */
const MAX_BUFFER_CHARS = 8 << 20;

export function responseInfo(res: Response): ResponseInfo {
  return { status: res.status, statusText: res.statusText, headers: res.headers, url: res.url };
}

export class ChunkStream<C extends ChunkLike> implements AsyncIterable<C> {
  /** Text of all chunks yielded so far. */
  textSoFar = "";
  /** Tool calls put together from the chunks yielded so far; a call's arguments may still be growing. */
  get toolCallsSoFar(): ToolCall[] {
    return this.#toolCalls.calls;
  }
  /** choice 0's finish_reason once a chunk carried it. */
  finishReason: FinishReason | null = null;
  /** From the usage chunk (the client asks for `include_usage` unless the request set stream_options). */
  usage: Usage | null = null;
  /** Status and headers of the response that is being read (the last attempt's). */
  response: ResponseInfo | undefined;
  /** `x-edgelm-route` (edge / origin), when the server says. */
  route: string | null = null;
  /** `x-request-id` when the server sends one, else the chunks' `id`. */
  requestId: string | null = null;
  /** Model that answered, from the chunks. */
  model: string | null = null;
  /** Chunks yielded so far. */
  chunks = 0;
  /** HTTP attempts made (1 + retries). */
  attempts = 0;

  readonly #spec: StreamSpec<C>;
  readonly #toolCalls = new ToolCallAccumulator();
  /** The call's own controller: follows the caller's signal, and `abort()`. */
  readonly #call: AbortController;
  readonly #unhook: () => void;
  #started = false;
  #sawDone = false;
  readonly #finished: Promise<void>;
  #settle!: (err?: unknown) => void;

  constructor(spec: StreamSpec<C>) {
    this.#spec = spec;
    const { controller, dispose } = childController(spec.signal);
    this.#call = controller;
    this.#unhook = dispose;
    this.#finished = new Promise<void>((resolve, reject) => {
      let done = false;
      this.#settle = (err) => {
        if (done) return;
        done = true;
        if (err === undefined) resolve();
        else reject(err);
      };
    });
    // Nobody has to wait on it; an error also surfaces from the iteration itself.
    this.#finished.catch(() => {});
  }

  /** Cancels the request, or the iteration in progress (which then throws APIUserAbortError). */
  abort(reason?: unknown): void {
    this.#call.abort(reason);
  }

  [Symbol.asyncIterator](): AsyncIterator<C> {
    if (this.#started) throw new EdgelmError("this stream is already being read: iterate it once, or use .text()");
    this.#started = true;
    return this.#run();
  }

  /** The whole text: reads the rest of the stream (or waits for the loop that is reading it). */
  async text(): Promise<string> {
    await this.#readAll();
    return this.textSoFar;
  }

  /**
   * The whole answer's tool calls (empty when it had none), read like `text()`. Check
   * `finishReason`: after "length" the last call's arguments are cut off.
   */
  async toolCalls(): Promise<ToolCall[]> {
    await this.#readAll();
    return this.toolCallsSoFar;
  }

  async #readAll(): Promise<void> {
    if (!this.#started) {
      for await (const _ of this) {
        // Reading is all that is needed; text and tool calls accumulate as chunks are accepted.
      }
    } else {
      await this.#finished;
    }
  }

  async *#run(): AsyncGenerator<C, void, undefined> {
    const callSignal = this.#call.signal;
    const timeoutMs = this.#spec.transport.timeoutMs;
    let attempt: Attempt | undefined;
    let sse: SseReader | undefined;
    let outcome: { err?: unknown } | undefined;
    let stopOnAbort: (() => void) | undefined;
    try {
      const opened = await withRetries(this.#spec.transport, callSignal, (a) => this.#open(a));
      attempt = opened.attempt;
      sse = opened.value.reader;
      // Close the body as soon as the caller aborts, even while the consumer is not reading: fetch's
      // own abort alone was seen to leave the connection (and the server's generation) running.
      const reader = sse;
      stopOnAbort = () => void reader.cancel();
      callSignal.addEventListener("abort", stopOnAbort, { once: true });
      let msg: SseEvent | undefined = opened.value.first;
      attempt.watchdog.stop();
      for (;;) {
        // Events already buffered must not outlive an abort.
        if (callSignal.aborted) throw new APIUserAbortError(undefined, { cause: callSignal.reason });
        if (msg === undefined) {
          if (this.#sawDone || this.finishReason !== null) break;
          throw new TruncatedStreamError(this.textSoFar, this.chunks);
        }
        const chunk = this.#accept(msg);
        if (chunk === DONE) break;
        if (chunk !== undefined) yield chunk;
        attempt.watchdog.arm();
        try {
          msg = await sse.next();
        } catch (raw) {
          const err = classify(raw, callSignal, attempt, timeoutMs);
          if (err instanceof APIUserAbortError) throw err;
          // The answer was complete; only the usage chunk / [DONE] went missing.
          if (this.finishReason !== null) msg = undefined;
          else throw new TruncatedStreamError(this.textSoFar, this.chunks, { cause: err });
        } finally {
          attempt.watchdog.stop();
        }
      }
      outcome = {};
    } catch (err) {
      outcome = { err };
      throw err;
    } finally {
      // No outcome: the consumer left the loop early (break / return), which cancels the request.
      this.#settle(outcome ? outcome.err : new APIUserAbortError("the stream was closed before it ended"));
      if (stopOnAbort) callSignal.removeEventListener("abort", stopOnAbort);
      attempt?.controller.abort();
      await sse?.cancel();
      attempt?.release();
      this.#unhook();
    }
  }

  /** One attempt: send, check the answer is a stream, and wait for its first event. */
  async #open(attempt: Attempt): Promise<{ reader: SseReader; first: SseEvent }> {
    this.attempts = attempt.number;
    const { transport, url, body } = this.#spec;
    const init = { method: "POST", headers: requestHeaders(transport, "text/event-stream"), body: JSON.stringify(body) };
    const res = await sendOnce(transport, url, init, attempt.controller.signal);
    this.response = responseInfo(res);
    this.route = res.headers.get("x-edgelm-route");
    this.requestId = res.headers.get("x-request-id");
    const type = res.headers.get("content-type");
    if (type !== null && !/^text\/event-stream\b/i.test(type)) {
      await res.body?.cancel().catch(() => {});
      throw new EdgelmError(`expected a text/event-stream answer, got "${type}"`);
    }
    if (!res.body) throw new APIConnectionError("the response has no body");
    const reader = new SseReader(res.body, { maxBufferSize: MAX_BUFFER_CHARS, overflowError: (message) => new EdgelmError(message) });
    try {
      const first = await reader.next();
      // Nothing at all before the end is a failed attempt, not an answer: safe to retry.
      if (first === undefined) throw new APIConnectionError("the stream ended before its first event");
      return { reader, first };
    } catch (err) {
      await reader.cancel();
      throw err;
    }
  }

  /** A chunk to yield, DONE, or undefined for events that are not chunks; throws for error events. */
  #accept(msg: SseEvent): C | typeof DONE | undefined {
    if (msg.data === "[DONE]") {
      this.#sawDone = true;
      return DONE;
    }
    let data: unknown;
    try {
      data = JSON.parse(msg.data);
    } catch {
      throw new EdgelmError(`the server sent an event that is not JSON: ${JSON.stringify(msg.data.slice(0, 200))}`);
    }
    const isError = msg.event === "error" || (typeof data === "object" && data !== null && (data as { error?: unknown }).error != null);
    if (isError) throw new APIError(undefined, data, this.response?.headers, this.requestId);
    // Named events are not chunks (a newer server's progress or keep-alive, say); skip them.
    if (msg.event !== undefined && msg.event !== "message") return undefined;
    const chunk = data as C;
    this.chunks++;
    this.requestId ??= chunk.id ?? null;
    this.model ??= chunk.model ?? null;
    const choice = chunk.choices?.[0];
    if (choice) {
      this.textSoFar += this.#spec.textOf(chunk);
      if (this.#spec.toolCallsOf) this.#toolCalls.add(this.#spec.toolCallsOf(chunk));
      if (choice.finish_reason != null) this.finishReason = choice.finish_reason;
    }
    if (chunk.usage) this.usage = chunk.usage;
    return chunk;
  }
}
