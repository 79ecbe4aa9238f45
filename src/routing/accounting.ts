/**
 * One routed request's bookkeeping: which path served it, its estimate, the tokens it used (from
 * the final usage), when its first token went out; at the end, the metrics and the cost fields
 * that go into `usage`.
 */
import type { Prices, Route } from "./config";
import { costUsd, roundUsd } from "./cost";
import type { RoutingMetrics } from "./metrics";
import type { CostUsage, Usage } from "./shapes";

export class Accounting {
  usage?: Usage;
  /** Token chunks seen: the completion count when the path sent no usage. */
  chunks = 0;
  private firstAt?: number;
  private ended = false;

  constructor(
    readonly route: Route,
    readonly endpoint: string,
    private readonly estimate: number | null,
    private readonly promptTokens: number,
    private readonly prices: Prices,
    private readonly metrics: RoutingMetrics,
    private readonly now: () => number,
    private readonly t0: number,
    /** Hears the tokens used when the request ends (the rate limit's refund). */
    private readonly onEnd?: (usedTokens: number) => void,
  ) {}

  /** A chunk with content went out (the first one sets time to first token). */
  token(): void {
    this.chunks++;
    this.firstAt ??= this.now();
  }

  private counts(): { promptTokens: number; completionTokens: number } {
    return this.usage
      ? { promptTokens: this.usage.prompt_tokens, completionTokens: this.usage.completion_tokens }
      : { promptTokens: this.promptTokens, completionTokens: this.chunks };
  }

  /** The path's own usage when it sent one, else the prompt as counted and the token chunks seen. */
  finalUsage(): Usage {
    return this.usage ?? { prompt_tokens: this.promptTokens, completion_tokens: this.chunks, total_tokens: this.promptTokens + this.chunks };
  }

  actualCost(): number | null {
    const c = costUsd(this.route, this.counts(), this.prices);
    return c === undefined ? null : roundUsd(c);
  }

  costFields(): CostUsage {
    return { edgelm_route: this.route, edgelm_estimated_cost_usd: this.estimate === null ? null : roundUsd(this.estimate), edgelm_cost_usd: this.actualCost() };
  }

  /** Once, however the request ends. `errorKind`: it ended in an error (event or status). */
  end(status: number, errorKind?: string, stream = false): void {
    if (this.ended) return;
    this.ended = true;
    const m = this.metrics;
    const route = this.route;
    m.requests.inc({ route, endpoint: this.endpoint, status: String(status) });
    if (errorKind) m.errors.inc({ route, kind: errorKind });
    const c = this.counts();
    m.promptTokens.inc({ route }, c.promptTokens);
    m.completionTokens.inc({ route }, c.completionTokens);
    const cost = this.actualCost();
    if (cost !== null && status < 400) m.costUsd.inc({ route }, cost);
    if (this.estimate !== null) m.estimatedCostUsd.inc({ route }, this.estimate);
    m.duration.observe({ route }, (this.now() - this.t0) / 1000);
    if (stream && this.firstAt !== undefined) m.firstToken.observe({ route }, (this.firstAt - this.t0) / 1000);
    // An error answer with nothing generated processed no prompt either (refused before the engine or the origin took it).
    const served = status < 400 || this.usage !== undefined || this.chunks > 0;
    this.onEnd?.(served ? c.promptTokens + c.completionTokens : 0);
  }
}
