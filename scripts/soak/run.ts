/**
 * One soak against one target: start it, fill its KV cache once, run the seeded mix from C clients
 * (plus bursts past the queue bound) until the time is up, let what is in flight finish, wait for
 * the engine to settle, and hand back everything seen. Bounded: by time, by a request count, and
 * each request by a limit of its own; it stops by itself.
 */
import { synthGGUF } from "../../weights-tools/fixtures";
import { exchange, type Outcome } from "./exchange";
import { Monitor, readGauges, type Gauges, type Probe, type Sample } from "./monitor";
import { SOAK_V8_FLAGS, startTarget, type TargetName } from "./targets";
import { burstPlan, fillPlan, nextPlan, randFor } from "./traffic";

export interface SoakOptions {
  target: TargetName;
  minutes: number;
  concurrency: number;
  seed: number;
  /** Part of the run (at least) that is warm-up, excluded from the RSS trend. */
  warmupFraction?: number;
  /** Seconds between bursts past the queue bound. */
  burstEveryS?: number;
  queueDepth?: number;
  maxBatch?: number;
  streamStallMs?: number;
  /** Requests at most, bursts and fill included. */
  maxRequests?: number;
  /** How long the engine may take to let go of everything once the traffic stopped. */
  settleMs?: number;
  /** V8 flags for the server (default: the target's SOAK_V8_FLAGS). */
  v8Flags?: string[];
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface SoakRun {
  target: TargetName;
  options: Required<Omit<SoakOptions, "log">>;
  startedAt: string;
  pid: number;
  outcomes: Outcome[];
  samples: Sample[];
  probes: Probe[];
  /** When the fill made every KV block written once (ms since start); undefined if it never did. */
  kvFilledMs?: number;
  warmupEndMs: number;
  trafficEndMs: number;
  /** Gauges after the settle, and how long settling took. */
  settled: { gauges?: Gauges; health?: unknown; ms: number };
  bursts: number;
  /** Why the run could not finish its measurements, if it could not. */
  failure?: string;
  /** The server's last output, kept when something failed. */
  serverLog?: string;
  /** Node's process warnings the server printed (serve only; none is expected). */
  warnings?: string[];
}

/** Ms a single exchange may take before it counts as a timeout (a stuck stream must not hold the soak). */
const EXCHANGE_LIMIT_MS = 120_000;

/** The gauges that must read zero once nothing is in flight. */
export const IDLE_GAUGES = ["edgelm_generations_running", "edgelm_generations_waiting", "edgelm_kv_blocks_reserved", "edgelm_kv_blocks_used", "edgelm_batch_live_sequences"] as const;

export const isIdle = (g: Gauges | undefined, target: TargetName) =>
  !!g && IDLE_GAUGES.every((k) => (g[k] === undefined ? k === "edgelm_batch_live_sequences" && target === "worker" : g[k] === 0));

export async function runSoak(opts: SoakOptions): Promise<SoakRun> {
  const o: Required<Omit<SoakOptions, "log">> = {
    warmupFraction: 1 / 3,
    burstEveryS: 10,
    queueDepth: 4,
    maxBatch: 4,
    streamStallMs: 3_000,
    maxRequests: 200_000,
    settleMs: 20_000,
    v8Flags: [...SOAK_V8_FLAGS[opts.target]],
    ...opts,
  };
  delete (o as SoakOptions).log;
  const log = opts.log ?? (() => {});
  const durationMs = o.minutes * 60_000;
  const model = await synthGGUF("tiny", "q4_0");
  log(`soak ${o.target}: starting (${o.minutes} min, ${o.concurrency} clients, seed ${o.seed})`);
  const target = await startTarget(o.target, { model, queueDepth: o.queueDepth, maxBatch: o.maxBatch, streamStallMs: o.streamStallMs, v8Flags: o.v8Flags });
  const t0 = performance.now();
  const run: SoakRun = {
    target: o.target,
    options: o,
    startedAt: new Date().toISOString(),
    pid: target.pid,
    outcomes: [],
    samples: [],
    probes: [],
    warmupEndMs: durationMs * o.warmupFraction,
    trafficEndMs: 0,
    settled: { ms: 0 },
    bursts: 0,
  };
  const monitor = new Monitor(target.url, target.pid, t0);
  const elapsed = () => performance.now() - t0;
  let sent = 0;
  const send = async (plan: ReturnType<typeof nextPlan>) => {
    sent++;
    const out = await exchange(target.url, plan, EXCHANGE_LIMIT_MS, t0);
    run.outcomes.push(out);
    return out;
  };
  const open = () => elapsed() < durationMs && sent < o.maxRequests && !monitor.failure;

  try {
    // Fill: every KV block written once, so that the RSS measured after it is the cache's full size.
    let filled = false;
    const fillUntil = durationMs * 0.5;
    await Promise.all(
      Array.from({ length: o.concurrency }, async (_, c) => {
        const r = randFor(o.seed, 1000 + c);
        while (!filled && open() && elapsed() < fillUntil) {
          await send(fillPlan(r));
          const g = await readGauges(target.url);
          if (g?.edgelm_kv_blocks_free === 0 && !filled) {
            filled = true;
            run.kvFilledMs = elapsed();
          }
        }
      }),
    );
    log(`soak ${o.target}: KV cache ${filled ? `filled at ${(run.kvFilledMs! / 1000).toFixed(1)} s` : "NOT filled"}; mixed traffic`);
    run.warmupEndMs = Math.max(run.warmupEndMs, run.kvFilledMs ?? durationMs);

    const clients = Array.from({ length: o.concurrency }, async (_, c) => {
      const r = randFor(o.seed, c);
      while (open()) {
        const out = await send(nextPlan(r));
        // A refused client waits as real ones do (retry-after is 1 s); retrying at once would turn the run into a 429 loop.
        if (out.status === 429) await new Promise((res) => setTimeout(res, 250 + 750 * r()));
      }
    });
    const bursts = (async () => {
      const r = randFor(o.seed, 9999);
      const size = target.maxRunning + target.queueDepth + 4;
      for (;;) {
        const wait = o.burstEveryS * 1000 * (0.5 + r());
        if (elapsed() + wait >= durationMs) return;
        await new Promise((res) => setTimeout(res, wait));
        if (!open()) return;
        run.bursts++;
        await Promise.all(Array.from({ length: size }, () => send(burstPlan(r))));
      }
    })();
    let lastReport = 0;
    const progress = setInterval(() => {
      if (elapsed() - lastReport < 60_000) return;
      lastReport = elapsed();
      log(`soak ${o.target}: ${(elapsed() / 60_000).toFixed(1)} min, ${run.outcomes.length} requests done`);
    }, 5_000);
    await Promise.all([...clients, bursts]).finally(() => clearInterval(progress));
    run.trafficEndMs = elapsed();
    if (monitor.failure) throw monitor.failure;

    // Settle: what ended last may still be releasing (a disconnect that workerd did not report waits for the stall fallback).
    const settleStart = performance.now();
    let g: Gauges | undefined;
    do {
      g = await readGauges(target.url);
      if (isIdle(g, o.target)) break;
      await new Promise((res) => setTimeout(res, 250));
    } while (performance.now() - settleStart < o.settleMs);
    run.settled = { gauges: g, ms: performance.now() - settleStart };
    try {
      run.settled.health = await (await fetch(`${target.url}/health`, { signal: AbortSignal.timeout(5_000) })).json();
    } catch (e) {
      run.settled.health = { error: String(e) };
    }
    log(`soak ${o.target}: traffic stopped at ${(run.trafficEndMs / 1000).toFixed(1)} s, ${run.outcomes.length} requests; settled in ${(run.settled.ms / 1000).toFixed(1)} s`);
  } catch (e) {
    run.failure = (e as Error).stack ?? String(e);
  } finally {
    await monitor.stop();
    if (monitor.failure && !run.failure) run.failure = monitor.failure.message;
    run.samples = monitor.samples;
    run.probes = monitor.probes;
    if (run.failure) run.serverLog = target.logTail();
    run.warnings = target.warnings();
    await target.close();
  }
  return run;
}
