#!/usr/bin/env node
// The sharded deployment on this machine, one command: plans the model's shards, starts the
// coordinator (src/worker.ts, ENGINE=sharded) and one Worker per shard (src/shard/worker.ts, each
// with its own Durable Object class) in workerd through Miniflare, puts the GGUF, its plan and row hashes in
// local R2, waits until every shard has loaded, and serves http://127.0.0.1:8787 until Ctrl-C.
// Offline; everything listens on 127.0.0.1. docs/sharding.md explains the pieces.
//
//   node scripts/shards-dev.mjs [--model FILE.gguf | --preset tiny|full2l|1_6b] [--budget-mb 120]
//                               [--context 2048] [--sequences 1] [--replicas 1] [--port 8787] [--transport stream|rpc]
//
// Default: the synthetic tiny model (Q4_0) with a 19 MiB budget, which still cuts its head into
// six slices. --preset 1_6b makes the synthetic full-size model once (~1 min) and puts 0.93 GB
// into local R2 (a minute or more).
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { tsImport } from "tsx/esm/api";

const USAGE = `usage: node scripts/shards-dev.mjs [--model FILE.gguf | --preset tiny|full2l|1_6b] [--budget-mb MB]
                                 [--context N] [--sequences N] [--replicas N] [--port 8787] [--transport stream|rpc] [--wrangler]
Plans the shards, starts the coordinator and every shard Worker in workerd (Miniflare) on
127.0.0.1, puts the GGUF, plan and row hashes into local R2, and serves until Ctrl-C (docs/sharding.md).
Defaults: synthetic tiny Q4_0, 19 MiB budget, context 512; other models: 120 MiB, context 2048.
--replicas N: N independent shard pipelines (SHARD_REPLICAS), each replica of a shard its own
  script; responses name theirs in x-edgelm-replica; send x-session-affinity to choose by session.
--wrangler: run the configs \`edgelm shard-plan --out\` writes under \`wrangler dev -c … -c …\` instead
  (state in .wrangler/shards-dev; files up to wrangler's 300 MiB local put; on a 2-core machine a
  start can livelock in V8's GC, which only the default mode can prevent).`;
let o;
try {
  ({ values: o } = parseArgs({
    options: {
      model: { type: "string" },
      preset: { type: "string", default: "tiny" },
      "budget-mb": { type: "string" },
      context: { type: "string" },
      sequences: { type: "string", default: "1" },
      replicas: { type: "string", default: "1" },
      port: { type: "string", default: process.env.PORT ?? "8787" },
      transport: { type: "string", default: "stream" },
      help: { type: "boolean", short: "h" },
      wrangler: { type: "boolean" },
    },
  }));
} catch (err) {
  console.error(`shards-dev: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}
const badNumber = ["budget-mb", "context", "sequences", "port"].find((k) => o[k] !== undefined && !(Number(o[k]) > 0));
if (badNumber) {
  console.error(`shards-dev: --${badNumber} must be a positive number, got ${JSON.stringify(o[badNumber])}`);
  process.exit(2);
}
if (!/^\d+$/.test(o.replicas) || Number(o.replicas) < 1) {
  console.error(`shards-dev: --replicas must be a whole number ≥ 1, got ${JSON.stringify(o.replicas)}`);
  process.exit(2);
}
if (o.wrangler && o.replicas !== "1") {
  console.error("shards-dev: --wrangler runs one pipeline; for --replicas use the default (Miniflare) mode");
  process.exit(2);
}
const { SHARDED_PRESETS, FILE_PRESET } = await tsImport("../test/shard/presets.ts", import.meta.url);
if (!SHARDED_PRESETS[o.preset] || !["stream", "rpc"].includes(o.transport)) {
  console.error(`shards-dev: --preset must be tiny, full2l or 1_6b and --transport stream or rpc\n${USAGE}`);
  process.exit(2);
}
if (o.model && !existsSync(o.model)) {
  console.error(`shards-dev: no such file: ${o.model}`);
  process.exit(1);
}
const preset = o.model ? FILE_PRESET : SHARDED_PRESETS[o.preset];
o["budget-mb"] ??= String(preset.budgetMb);
o.context ??= String(preset.context);
if (o.wrangler) {
  const { runWranglerDev } = await import("./shards-wrangler-dev.mjs");
  await runWranglerDev(o);
  process.exit(0);
}
const { startSharded } = await tsImport("../test/shard/harness.ts", import.meta.url);
const { synthGGUF } = await tsImport("../weights-tools/fixtures.ts", import.meta.url);
const { formatPlan } = await tsImport("../src/shard/plan.ts", import.meta.url);
const { formatDeployment } = await tsImport("../src/shard/replicas.ts", import.meta.url);

const model = o.model ?? (await synthGGUF(o.preset, "q4_0"));
const key = `models/${model.split("/").pop()}`;
console.log(`shards-dev: ${model}`);
const t0 = Date.now();
const dep = await startSharded({
  model,
  key,
  budgetMb: Number(o["budget-mb"]),
  context: Number(o.context),
  sequences: Number(o.sequences),
  replicas: Number(o.replicas),
  port: Number(o.port),
  vars: { MODEL_ID: "edgelm-sharded", CPU_BUDGET_MS: "0", LOAD_WAIT_MS: "600000", SHARD_TRANSPORT: o.transport },
  // Hashed as edgelm shard-plan does (the row hashes uploaded beside the plan): served as a deployment is, verified.
  hashesFrom: model,
});
console.log(formatPlan(dep.plan));
console.log(formatDeployment(dep.plan, { replicas: Number(o.replicas) }));
let shown = 0;
const flush = () => {
  const logs = dep.logs();
  process.stdout.write(logs.slice(shown));
  shown = logs.length;
};
for (;;) {
  const res = await fetch(`${dep.url}/health`).catch(() => undefined);
  flush();
  if (res?.status === 200) break;
  const body = res ? await res.json().catch(() => ({})) : {};
  if (body.status === "failed") {
    console.error(`shards-dev: loading failed: ${body.reason}`);
    await dep.close();
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 250));
}
console.log(`\nshards-dev: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s on ${dep.url}  (Ctrl-C stops)`);
console.log(`  curl ${dep.url}/v1/completions -H 'content-type: application/json' -d '{"model":"edgelm-sharded","prompt":"Hello","max_tokens":16,"stream":true}'`);
const timer = setInterval(flush, 500);
const stop = async () => {
  clearInterval(timer);
  await dep.close();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
