/**
 * Per-isolate metrics in the Prometheus text exposition format (GET /metrics). Isolates are many
 * and short-lived, so these are counters since this isolate started (the `edgelm_isolate_start_seconds`
 * gauge says when); a scraper sums over isolates. No dependency: a few counters, histograms and
 * gauges are all we need.
 */

type Labels = Record<string, string>;

function key(labels: Labels): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`)
    .join(",");
}

function fmt(n: number): string {
  if (n === Infinity) return "+Inf";
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(12)));
}

interface Family {
  render(): string[];
}

export class Counter implements Family {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  get(labels: Labels): number {
    return this.values.get(key(labels)) ?? 0;
  }

  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) out.push(`${this.name}{${k}} ${fmt(v)}`);
    return out;
  }
}

export class Histogram implements Family {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}

  observe(labels: Labels, v: number): void {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    this.buckets.forEach((b, i) => {
      if (v <= b) s!.counts[i]++;
    });
    s.sum += v;
    s.count++;
  }

  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? "," : "";
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket{${k}${sep}le="${fmt(b)}"} ${s.counts[i]}`));
      out.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum{${k}} ${fmt(s.sum)}`);
      out.push(`${this.name}_count{${k}} ${s.count}`);
    }
    return out;
  }
}

export class Gauge implements Family {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}

  render(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${fmt(this.read())}`];
  }
}

const SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** The routing metrics of one isolate. */
export class RoutingMetrics {
  readonly requests = new Counter("edgelm_requests_total", "Generation requests by the route that served them (none: refused before routing), endpoint and HTTP status.");
  readonly decisions = new Counter("edgelm_route_decisions_total", "Routing decisions by chosen route and reason.");
  readonly fallbacks = new Counter("edgelm_fallbacks_total", "Requests served by the other route after the chosen one failed before its first token.");
  readonly errors = new Counter("edgelm_errors_total", "Failures by route and kind (before the first token: the fallback cause; after: an error event).");
  readonly promptTokens = new Counter("edgelm_prompt_tokens_total", "Prompt tokens by route.");
  readonly completionTokens = new Counter("edgelm_completion_tokens_total", "Generated tokens by route.");
  readonly costUsd = new Counter("edgelm_cost_usd_total", "Cost in USD from the price table and the tokens used, by route.");
  readonly estimatedCostUsd = new Counter("edgelm_estimated_cost_usd_total", "Up-front cost estimates in USD, by route.");
  readonly duration = new Histogram("edgelm_request_duration_seconds", "Time from the request to the last byte of the answer, by route.", SECONDS);
  readonly firstToken = new Histogram("edgelm_time_to_first_token_seconds", "Time from the request to the first token sent, by route (streams only).", SECONDS);
  private readonly gauges: Gauge[] = [];

  constructor(startedAtMs: number) {
    this.gauge("edgelm_isolate_start_seconds", "When this isolate started (unix seconds): the counters count from here.", () => Math.floor(startedAtMs / 1000));
  }

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.push(new Gauge(name, help, read));
  }

  render(): string {
    const families: Family[] = [this.requests, this.decisions, this.fallbacks, this.errors, this.promptTokens, this.completionTokens, this.costUsd, this.estimatedCostUsd, this.duration, this.firstToken, ...this.gauges];
    return families.flatMap((f) => f.render()).join("\n") + "\n";
  }
}

export { PROMETHEUS_CONTENT_TYPE } from "../api/handlers/info";
