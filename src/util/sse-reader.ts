/**
 * A server-sent-events body, pulled one item at a time. Network chunks split events anywhere
 * (mid-line, mid-JSON, mid-UTF-8 character), so the framing is eventsource-parser's and the
 * decoding a streaming TextDecoder's. The router (reading the edge and the GPU origin) and the
 * client library both read SSE this way; what differs between them is an option.
 */
import { createParser, type EventSourceMessage, type EventSourceParser } from "eventsource-parser";

export interface SseEvent extends EventSourceMessage {
  type: "event";
}

export interface SseComment {
  type: "comment";
  text: string;
}

/** What `next()` yields: events, and comments as well for a reader that asked for them. */
export type SseItem<Comments extends boolean = boolean> = Comments extends true ? SseEvent | SseComment : SseEvent;

export interface SseReaderOptions<Comments extends boolean> {
  /**
   * Yield `:` comments too. A keep-alive is a sign of life: a caller that times its reads needs it
   * to restart the clock, and a proxy may want to pass it on.
   */
  comments?: Comments;
  /** Characters the parser may hold for one unfinished line or event; a stream that needs more is broken or hostile, and reading it fails for good. */
  maxBufferSize?: number;
  /** The error that failure throws, so a library can keep its own error classes. */
  overflowError?: (message: string) => Error;
  /**
   * Dispatch an event that the end of the body cut off before its blank line. The SSE spec drops
   * it; a server that closes right after its last `data:` line still meant it.
   */
  keepUnterminated?: boolean;
}

/** No item arrived within the time a `next(timeoutMs)` allowed. */
export class SseTimeout extends Error {
  override name = "SseTimeout";
}

/** The buffer cap was exceeded (unless the reader was given its own `overflowError`). */
export class SseOverflowError extends Error {
  override name = "SseOverflowError";
}

export class SseReader<Comments extends boolean = false> {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  readonly #parser: EventSourceParser;
  readonly #items: (SseEvent | SseComment)[] = [];
  readonly #comments: boolean;
  readonly #keepUnterminated: boolean;
  #ended = false;
  #fatal: Error | undefined;

  constructor(body: ReadableStream<Uint8Array>, options: SseReaderOptions<Comments> = {}) {
    this.#reader = body.getReader();
    this.#comments = options.comments === true;
    this.#keepUnterminated = options.keepUnterminated === true;
    const overflowError = options.overflowError ?? ((message) => new SseOverflowError(message));
    this.#parser = createParser({
      onEvent: (e) => this.#items.push({ ...e, type: "event" }),
      onComment: (text) => this.#items.push({ type: "comment", text }),
      // Unknown fields and bad `retry:` values are ignored, as the SSE spec says; only overflow is fatal.
      onError: (err) => {
        if (err.type === "max-buffer-size-exceeded") this.#fatal = overflowError(`SSE stream: ${err.message}`);
      },
      maxBufferSize: options.maxBufferSize,
    });
  }

  /**
   * The next item, or undefined once the body has ended. `timeoutMs` bounds the whole call: without
   * an item by then it throws SseTimeout, and the read that lost the race is abandoned, so a caller
   * treats a timeout as the end of this stream.
   */
  async next(timeoutMs?: number): Promise<SseItem<Comments> | undefined> {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    for (;;) {
      if (this.#fatal) throw this.#fatal;
      const item = this.#items.shift();
      if (item !== undefined) {
        if (this.#wanted(item)) return item;
        continue;
      }
      if (this.#ended) return undefined;
      const r = await this.#read(deadline === undefined ? undefined : deadline - Date.now());
      if (r.done) {
        this.#ended = true;
        this.#parser.feed(this.#decoder.decode() + (this.#keepUnterminated ? "\n\n" : ""));
      } else {
        this.#parser.feed(this.#decoder.decode(r.value, { stream: true }));
      }
    }
  }

  /** Stops reading and cancels the body, so the connection (and the server's generation) ends. */
  async cancel(): Promise<void> {
    this.#ended = true;
    await this.#reader.cancel().catch(() => {});
  }

  #wanted(item: SseEvent | SseComment): item is SseItem<Comments> {
    return item.type === "event" || this.#comments;
  }

  #read(ms: number | undefined): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (ms === undefined) return this.#reader.read();
    if (ms <= 0) return Promise.reject(new SseTimeout("timed out"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SseTimeout(`no data for ${ms} ms`)), ms);
    });
    return Promise.race([this.#reader.read(), timeout]).finally(() => clearTimeout(timer));
  }
}
