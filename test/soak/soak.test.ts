/**
 * The soak harness in CI: minutes of the seeded mix (scripts/soak/traffic.ts) against each real
 * server on loopback, then the checks of scripts/soak/report.ts: every response complete or
 * cleanly errored, statuses only from the expected set, nothing left in the engine or the queue
 * after the traffic, RSS flat after a warm-up that filled the KV cache, /health answering within
 * 2 s throughout. docs/soak.md.
 *
 * EDGELM_SOAK_TARGET (worker, serve, or both comma-separated) and EDGELM_SOAK_MINUTES change what
 * runs; the default is both: `edgelm serve`, then the Worker in bare workerd, four minutes each.
 */
import { describe, expect, it } from "vitest";
import { formatSummary, summarize } from "../../scripts/soak/report";
import { runSoak } from "../../scripts/soak/run";
import type { TargetName } from "../../scripts/soak/targets";

const targets = (process.env.EDGELM_SOAK_TARGET ?? "serve,worker").split(",") as TargetName[];
/**
 * One minute of samples after the warm-up was too few: a single step of 3 MiB (V8 or workerd
 * touching new memory once) read as 3.5 MiB/min, and serve's RSS swinging ±4 MiB with four batched
 * streams read as 4.2; two minutes read flat. The batching Worker's RSS still rises by ~2.5 MiB in
 * its second minute and is flat from about 130 s on, so it warms up for two; a single later step
 * is not read as a slope (withoutLargestStep; docs/soak.md, "In CI"). Serve, faster since, rose
 * ~8 MiB through minutes 2-3 under CI's load (and fell alone), so it warms up for two as well.
 */
const PLAN: Record<TargetName, { minutes: number; warmupFraction: number }> = {
  serve: { minutes: 4, warmupFraction: 1 / 2 },
  worker: { minutes: 4, warmupFraction: 1 / 2 },
};
const minutesOverride = process.env.EDGELM_SOAK_MINUTES === undefined ? undefined : Number(process.env.EDGELM_SOAK_MINUTES);

describe.each(targets)("soak against %s", (target) => {
  const minutes = minutesOverride ?? PLAN[target].minutes;
  it(
    `${minutes} min of mixed traffic, faults and bursts leaves the server whole`,
    async () => {
      // The server runs with the target's V8 heap sizing (SOAK_V8_FLAGS; docs/soak.md says why).
      const run = await runSoak({ target, minutes, concurrency: 4, seed: 1, warmupFraction: PLAN[target].warmupFraction });
      const summary = summarize(run);
      const table = formatSummary(summary);
      // The table is the evidence when a check fails: it names the faults and shows the trend.
      console.log(table);
      const failed = summary.checks.filter((c) => !c.ok);
      expect(failed, `${table}\n${run.serverLog ?? ""}`).toEqual([]);
    },
    (minutes * 60 + 60) * 1000,
  );
});
