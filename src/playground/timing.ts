/**
 * Time to first token and tokens per second for one run. Decode speed counts from the first token,
 * so that queueing and prefill (already in the time to first token) do not dilute it.
 */
export class RunTiming {
  private readonly start = performance.now();
  private first: number | undefined;
  private last: number | undefined;
  tokens = 0;

  /** One streamed chunk that carried text: about one token. */
  token(): void {
    const now = performance.now();
    this.first ??= now;
    this.last = now;
    this.tokens++;
  }

  get ttftMs(): number | undefined {
    return this.first === undefined ? undefined : this.first - this.start;
  }

  /** Tokens after the first over the time since it; `counted` replaces the chunk count once usage says. */
  tokensPerSecond(counted = this.tokens): number | undefined {
    if (this.first === undefined || this.last === undefined || counted < 2 || this.last <= this.first) return undefined;
    return (counted - 1) / ((this.last - this.first) / 1000);
  }
}
