#!/usr/bin/env node
// The sharded deployment on this machine, one command: plans the model's shards, starts the
// coordinator (src/worker.ts, ENGINE=sharded) and one Worker per shard (src/shard/worker.ts, each
// with its own Durable Object class) in workerd through Miniflare, puts the GGUF and its plan in
// local R2, waits until every shard has loaded, and serves http://127.0.0.1:8787 until Ctrl-C.
// Offline; everything listens on 127.0.0.1. docs/sharding.md explains the pieces.
//
//   node scripts/shards-dev.mjs [--model FILE.gguf | --preset tiny|full2l|1_6b] [--budget-mb 120]
//                               [--context 2048] [--sequences 1] [--port 8787] [--transport stream|rpc]
//
// Default: the synthetic tiny model (Q4_0) with a 19 MiB budget, which still cuts its head into
// five slices. --preset 1_6b makes the synthetic full-size model once (~1 min) and puts 0.93 GB
// into local R2 (a minute or more).
import { parseArgs } from "node:util";
import { tsImport } from "tsx/esm/api";

const { values: o } = parseArgs({
  options: {
    model: { type: "string" },
    preset: { type: "string", default: "tiny" },
    "budget-mb": { type: "string" },
    context: { type: "string" },
    sequences: { type: "string", default: "1" },
    port: { type: "string", default: process.env.PORT ?? "8787" },
    transport: { type: "string", default: "stream" },
  },
});
const { startSharded } = await tsImport("../test/shard/harness.ts", import.meta.url);
const { synthGGUF } = await tsImport("../weights-tools/fixtures.ts", import.meta.url);
const { formatPlan } = await tsImport("../src/shard/plan.ts", import.meta.url);

const tiny = !o.model && o.preset === "tiny";
const model = o.model ?? (await synthGGUF(o.preset, "q4_0"));
const key = `models/${model.split("/").pop()}`;
console.log(`shards-dev: ${model}`);
const t0 = Date.now();
const dep = await startSharded({
  model,
  key,
  budgetMb: Number(o["budget-mb"] ?? (tiny ? 19 : 120)),
  context: Number(o.context ?? (tiny ? 512 : 2048)),
  sequences: Number(o.sequences),
  port: Number(o.port),
  vars: { MODEL_ID: "edgelm-sharded", CPU_BUDGET_MS: "0", LOAD_WAIT_MS: "600000", SHARD_TRANSPORT: o.transport },
});
console.log(formatPlan(dep.plan));
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
