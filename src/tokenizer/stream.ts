/**
 * Incremental detokenizer for SSE. Two hold-backs keep what is sent final:
 * - bytes of a UTF-8 character split across tokens wait for the rest (TextDecoder in stream mode,
 *   so the concatenated output equals `decode(allIds)` byte for byte, U+FFFD included);
 * - text that could still become a stop string waits until it is ruled out; a matched stop is
 *   reported and never emitted, as OpenAI's `stop` requires.
 */
import { wellFormed } from "./binary";
import type { Tokenizer } from "./tokenizer";

export interface StreamOptions {
  /** Stop strings; the text is cut before the earliest match. */
  stop?: readonly string[];
  /** Token ids that end the stream (e.g. eos), reported as a stop and never emitted. */
  stopTokenIds?: Iterable<number>;
  /** Leave out control tokens' text. Default true (what a client should see). */
  skipSpecial?: boolean;
}

export type StopReason = { kind: "string"; value: string } | { kind: "token"; id: number };

export interface StreamEvent {
  /** Text that is now final (may be ""). */
  text: string;
  /** Set once, when a stop string or stop token ends the stream. */
  stop?: StopReason;
}

/** One token's event: the text it makes final, and where its own text begins. */
export interface TokenText extends StreamEvent {
  /**
   * Offset (UTF-16 units) in all the text decoded so far, held and stop-matched text included,
   * where this token's own characters begin: the first character it starts or completes. Text
   * released up to past it carries this token (return_token_ids).
   */
  start: number;
}

export class StreamDetokenizer {
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  private readonly stops: string[];
  private readonly stopIds: Set<number>;
  private readonly skipSpecial: boolean;
  private held = "";
  private done = false;
  /** UTF-16 units decoded so far, whether released, held or cut by a stop. */
  private decoded = 0;

  constructor(
    private readonly tokenizer: Tokenizer,
    opts: StreamOptions = {},
  ) {
    this.stops = [...new Set((opts.stop ?? []).map(wellFormed))].filter((s) => s !== "");
    this.stopIds = new Set(opts.stopTokenIds ?? []);
    this.skipSpecial = opts.skipSpecial ?? true;
  }

  get stopped(): boolean {
    return this.done;
  }

  /** Feeds one generated token. Out-of-range ids throw. */
  push(id: number): TokenText {
    if (this.done) throw new Error("StreamDetokenizer: push() after the stream ended");
    const bytes = this.tokenizer.decodeBytes([id], { skipSpecial: this.skipSpecial });
    const start = this.decoded;
    if (this.stopIds.has(id)) return { ...this.finish({ kind: "token", id }), start };
    const fresh = this.decoder.decode(bytes, { stream: true });
    this.decoded += fresh.length;
    return { ...this.take(fresh, false), start };
  }

  /** End of generation: releases everything held (an unfinished character becomes U+FFFD). */
  flush(): StreamEvent {
    if (this.done) return { text: "" };
    return this.take(this.decoder.decode(), true);
  }

  private finish(stop: StopReason): StreamEvent {
    const tail = this.held + this.decoder.decode();
    this.held = "";
    this.done = true;
    // A stop token: the held text was only a possible stop-string start, and it is final now.
    const ev = this.scan(tail);
    return ev.stop ? ev : { text: tail, stop };
  }

  private take(fresh: string, final: boolean): StreamEvent {
    const text = this.held + fresh;
    const ev = this.scan(text);
    if (ev.stop) {
      this.held = "";
      this.done = true;
      return ev;
    }
    if (final) {
      this.held = "";
      this.done = true;
      return { text };
    }
    const keep = this.pendingStopPrefix(text);
    this.held = text.slice(text.length - keep);
    return { text: text.slice(0, text.length - keep) };
  }

  /** Earliest stop-string match in `text` (first listed wins a tie). */
  private scan(text: string): StreamEvent {
    let at = -1;
    let which = "";
    for (const s of this.stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = s;
      }
    }
    return at < 0 ? { text } : { text: text.slice(0, at), stop: { kind: "string", value: which } };
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
  private pendingStopPrefix(text: string): number {
    let longest = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, text.length); k > longest; k--) {
        if (text.endsWith(s.slice(0, k))) {
          longest = k;
          break;
        }
      }
    }
    return longest;
  }
}
