/**
 * The soak and load harness: a seeded mix of requests (completions and chats, streamed or not,
 * long prompts, stop sequences, aborts in prefill and decode, bad bodies, bursts past the queue
 * bound) against the Worker in workerd or `edgelm serve`, on loopback, with the synthetic tiny
 * model; then a table and bench/results/soak-<time>.json. docs/soak.md.
 *
 *   npm run soak -- [--minutes 2] [--concurrency 4] [--target worker|serve|both] [--seed 1]
 *
 * The exit status is 1 when a check failed, so a long run can gate a release.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatSummary, summarize, type Summary } from "./soak/report";
import { runSoak } from "./soak/run";
import { TARGETS, type TargetName } from "./soak/targets";

const usage = "usage: npm run soak -- [--minutes M] [--concurrency C] [--target worker|serve|both] [--seed S] [--queue-depth N] [--max-requests N]";
const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "2" },
    concurrency: { type: "string", default: "4" },
    target: { type: "string", default: "worker" },
    seed: { type: "string", default: "1" },
    "queue-depth": { type: "string", default: "4" },
    "max-requests": { type: "string", default: "200000" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const num = (name: string, v: string, min: number, int = true) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (int && !Number.isInteger(n))) {
    console.error(`soak: --${name} must be ${int ? "an integer" : "a number"} ≥ ${min}, got ${JSON.stringify(v)}\n${usage}`);
    process.exit(2);
  }
  return n;
};
const minutes = num("minutes", values.minutes!, 0.1, false);
const concurrency = num("concurrency", values.concurrency!, 1);
const seed = num("seed", values.seed!, 0);
const queueDepth = num("queue-depth", values["queue-depth"]!, 0);
const maxRequests = num("max-requests", values["max-requests"]!, 1);
const targets: TargetName[] = values.target === "both" ? [...TARGETS] : TARGETS.includes(values.target as TargetName) ? [values.target as TargetName] : [];
if (!targets.length) {
  console.error(`soak: --target must be worker, serve or both, got ${JSON.stringify(values.target)}\n${usage}`);
  process.exit(2);
}

const summaries: Summary[] = [];
for (const target of targets) {
  const run = await runSoak({ target, minutes, concurrency, seed, queueDepth, maxRequests, log: (l) => console.error(l) });
  const summary = summarize(run);
  summaries.push(summary);
  console.log(`\n${formatSummary(summary)}\n`);
  if (run.serverLog) console.error(`server output (tail):\n${run.serverLog.slice(-4000)}`);
}

const dir = join(dirname(fileURLToPath(import.meta.url)), "../bench/results");
mkdirSync(dir, { recursive: true });
const file = join(dir, `soak-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(file, JSON.stringify({ machine: machineNote(), runs: summaries }, null, 1));
console.log(`wrote ${file}`);
process.exitCode = summaries.every((s) => s.checks.every((c) => c.ok)) ? 0 : 1;

/** The numbers mean little without the machine; the load average says whether it was shared. */
function machineNote() {
  return { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavgAtEnd: loadavg() };
}
