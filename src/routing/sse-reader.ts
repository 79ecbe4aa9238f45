/**
 * Reads a server-sent-events body item by item (data events and comments), with an optional time
 * limit per call. Network chunks split events anywhere, so the parsing is eventsource-parser's;
 * this adds the pull interface and the timeouts the origin client needs.
 */
import { createParser } from "eventsource-parser";

export type SseItem = { type: "data"; data: string } | { type: "comment" };

export class SseTimeout extends Error {
  override name = "SseTimeout";
}

export class SseReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private readonly items: SseItem[] = [];
  private readonly parser = createParser({
    onEvent: (e) => this.items.push({ type: "data", data: e.data }),
    onComment: () => this.items.push({ type: "comment" }),
  });
  private ended = false;

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  /** The next item, or undefined once the body ended. After `timeoutMs` without one: SseTimeout. */
  async next(timeoutMs?: number): Promise<SseItem | undefined> {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    while (this.items.length === 0) {
      if (this.ended) return undefined;
      const r = await this.read(deadline === undefined ? undefined : deadline - Date.now());
      if (r.done) {
        this.ended = true;
        this.parser.feed(this.decoder.decode() + "\n\n");
      } else this.parser.feed(this.decoder.decode(r.value, { stream: true }));
    }
    return this.items.shift();
  }

  cancel(): Promise<void> {
    this.ended = true;
    return this.reader.cancel().catch(() => {});
  }

  private read(ms: number | undefined): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (ms === undefined) return this.reader.read();
    if (ms <= 0) return Promise.reject(new SseTimeout("timed out"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SseTimeout(`no data for ${ms} ms`)), ms);
    });
    return Promise.race([this.reader.read(), timeout]).finally(() => clearTimeout(timer));
  }
}
