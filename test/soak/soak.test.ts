/**
 * The soak harness in CI: two minutes of the seeded mix (scripts/soak/traffic.ts) against a real
 * server on loopback, then the checks of scripts/soak/report.ts: every response complete or
 * cleanly errored, statuses only from the expected set, nothing left in the engine or the queue
 * after the traffic, RSS flat after a warm-up that filled the KV cache, /health answering within
 * 2 s throughout. docs/soak.md.
 *
 * EDGELM_SOAK_TARGET (worker|serve) and EDGELM_SOAK_MINUTES change what runs; the default is
 * `edgelm serve` for two minutes.
 */
import { describe, expect, it } from "vitest";
import { formatSummary, summarize } from "../../scripts/soak/report";
import { runSoak } from "../../scripts/soak/run";
import type { TargetName } from "../../scripts/soak/targets";

const target = (process.env.EDGELM_SOAK_TARGET ?? "serve") as TargetName;
const minutes = Number(process.env.EDGELM_SOAK_MINUTES ?? 2);

describe(`soak against ${target}`, () => {
  it(
    `${minutes} min of mixed traffic, faults and bursts leaves the server whole`,
    async () => {
      // --optimize-for-size: V8's default heap growth makes a ~50 MiB, ~2-minute RSS sawtooth in
      // `edgelm serve` (seen in a 5-minute run), which no 1 MiB/min bound can be read through in
      // one minute; sized for memory, the sawtooth is a few MiB and a leak still raises the floor.
      const run = await runSoak({ target, minutes, concurrency: 4, seed: 1, warmupFraction: 0.5, serveNodeFlags: ["--optimize-for-size"] });
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
