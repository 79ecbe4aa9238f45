/**
 * Server-sent events from a fetch body, one at a time, through eventsource-parser: it copes with
 * frames split anywhere (mid-line, mid-JSON, mid-UTF-8 character with the streaming TextDecoder),
 * multi-line `data:`, CRLF, and `: keep-alive` comments, which it drops.
 */
import { createParser, type EventSourceMessage, type EventSourceParser } from "eventsource-parser";
import { EdgelmError } from "./errors";

export type { EventSourceMessage };

/** A line or event bigger than this is a broken or hostile stream, not a token. */
const MAX_BUFFER_CHARS = 8 << 20;

export class SSEReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  readonly #parser: EventSourceParser;
  readonly #queue: EventSourceMessage[] = [];
  #ended = false;
  #fatal: Error | undefined;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader();
    this.#parser = createParser({
      onEvent: (ev) => this.#queue.push(ev),
      // Unknown fields and bad `retry:` values are ignored, as the SSE spec says; only overflow is fatal.
      onError: (err) => {
        if (err.type === "max-buffer-size-exceeded") this.#fatal = new EdgelmError(`SSE stream: ${err.message}`);
      },
      maxBufferSize: MAX_BUFFER_CHARS,
    });
  }

  /** The next event, or null when the body has ended. An event not closed by a blank line is dropped, per the spec. */
  async next(): Promise<EventSourceMessage | null> {
    for (;;) {
      if (this.#fatal) throw this.#fatal;
      const ev = this.#queue.shift();
      if (ev) return ev;
      if (this.#ended) return null;
      const { done, value } = await this.#reader.read();
      if (done) {
        this.#ended = true;
        this.#parser.feed(this.#decoder.decode());
      } else {
        this.#parser.feed(this.#decoder.decode(value, { stream: true }));
      }
    }
  }

  /** Stops reading and closes the body, so the connection (and the server's generation) ends. */
  async cancel(): Promise<void> {
    this.#ended = true;
    await this.#reader.cancel().catch(() => {});
  }
}
