/**
 * What the soak watches while traffic runs: once a second the server's RSS and its engine gauges
 * from /metrics, and, on a loop of its own, a /health probe whose answer time is the availability
 * figure (a probe queued behind a stuck sampler would measure the sampler).
 */
import { rssBytes } from "./proc";

/** The gauges the leak checks read (absent ones stay absent: the checks then fail rather than pass on no data). */
export const GAUGES = [
  "edgelm_generations_running",
  "edgelm_generations_waiting",
  "edgelm_kv_blocks_reserved",
  "edgelm_kv_blocks",
  "edgelm_kv_blocks_used",
  "edgelm_kv_blocks_cached",
  "edgelm_kv_blocks_free",
  "edgelm_batch_live_sequences",
  "edgelm_batch_steps_total",
  "edgelm_prefix_cache_hits_total",
] as const;

export type Gauges = Partial<Record<(typeof GAUGES)[number], number>>;

export interface Sample {
  /** ms since the soak started. */
  t: number;
  rss: number;
  /** Undefined when /metrics did not answer 200 in time. */
  gauges?: Gauges;
}

export interface Probe {
  t: number;
  /** ms to a complete answer, or to giving up. */
  ms: number;
  /** 0 when no answer came. */
  status: number;
  error?: string;
}

/** Unlabelled samples of a Prometheus text page, by name. */
export function parseGauges(text: string): Gauges {
  const out: Gauges = {};
  const wanted = new Set<string>(GAUGES);
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-z_:][a-z0-9_:]*) (\S+)$/i);
    if (m && wanted.has(m[1])) out[m[1] as keyof Gauges] = Number(m[2]);
  }
  return out;
}

export async function readGauges(url: string, timeoutMs = 5_000): Promise<Gauges | undefined> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return res.status === 200 ? parseGauges(text) : undefined;
  } catch {
    return undefined;
  }
}

export class Monitor {
  readonly samples: Sample[] = [];
  readonly probes: Probe[] = [];
  private running = true;
  private readonly loops: Promise<void>[];
  private readonly wake = new Set<() => void>();
  /** Why sampling stopped early (the server's process is gone, or /proc unreadable); the soak fails with it. */
  failure: Error | undefined;

  constructor(
    private readonly url: string,
    private readonly pid: number,
    private readonly t0: number,
    private readonly everyMs = 1_000,
    /** How long a probe may take before it is recorded as unanswered (the bound itself is the report's). */
    private readonly probeLimitMs = 10_000,
  ) {
    this.loops = [this.sampleLoop(), this.probeLoop()];
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private async sleep(ms: number): Promise<void> {
    if (!this.running || ms <= 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake.add(done);
    });
  }

  /** One RSS and gauge sample now (also used by the soak at phase boundaries). */
  async sample(): Promise<Sample> {
    const t = this.now();
    // Read before the fetch: /metrics itself allocates in the server.
    const rss = rssBytes(this.pid);
    const s = { t, rss, gauges: await readGauges(this.url) };
    this.samples.push(s);
    return s;
  }

  private async sampleLoop(): Promise<void> {
    while (this.running) {
      const next = performance.now() + this.everyMs;
      try {
        await this.sample();
      } catch (e) {
        this.failure = e as Error;
        return;
      }
      await this.sleep(next - performance.now());
    }
  }

  private async probeLoop(): Promise<void> {
    while (this.running) {
      const next = performance.now() + this.everyMs;
      const t = this.now();
      const start = performance.now();
      try {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(this.probeLimitMs) });
        await res.arrayBuffer();
        this.probes.push({ t, ms: performance.now() - start, status: res.status });
      } catch (e) {
        this.probes.push({ t, ms: performance.now() - start, status: 0, error: String((e as Error).message ?? e) });
      }
      await this.sleep(next - performance.now());
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    [...this.wake].forEach((f) => f());
    await Promise.all(this.loops);
  }
}
