/**
 * `return_token_ids` (vLLM's extension): which generated token ids go with which piece of text.
 *
 * The generator releases text late (a UTF-8 character split across tokens, a possible stop
 * string), so a token's id cannot simply ride with its own event: it goes with the event that
 * releases the first character the token starts, which keeps each chunk's ids and text together
 * and makes the streamed ids, concatenated, equal the whole response's `token_ids`. Tokens that
 * start inside a matched stop string, and the stop token itself, are never sent: the ids stop
 * where the text stops, so `prompt + token_ids` is exactly what the client saw, and what the
 * engine has in its KV cache.
 */
import type { DoneEvent, TokenEvent } from "../generate/generator";

export class TokenIdTracker {
  /** Characters (UTF-16 units) released to the client so far. */
  private released = 0;
  /** Ids not yet released, with the offset of the first character each one starts (the generator's `start`). */
  private pending: { id: number; start: number }[] = [];

  /** One token event → the ids whose text this event releases (often its own id, sometimes none or several). */
  push(ev: TokenEvent): number[] {
    this.pending.push({ id: ev.id, start: ev.start });
    this.released += ev.text.length;
    const n = this.pending.findIndex((p) => p.start >= this.released);
    return this.pending.splice(0, n < 0 ? this.pending.length : n).map((p) => p.id);
  }

  /**
   * The end: ids still held. After a stop string they lie inside it (left out); after a stop
   * token, the token itself is left out; otherwise they are tokens without text of their own
   * (special tokens) at the very end, and they belong to the answer.
   */
  finish(done: DoneEvent): number[] {
    const rest = this.pending.map((p) => p.id);
    this.pending = [];
    if (done.stop?.kind === "string") return [];
    if (done.stop?.kind === "token") return rest.slice(0, -1);
    return rest;
  }
}
