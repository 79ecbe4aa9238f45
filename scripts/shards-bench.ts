/**
 * Sharded vs single-isolate, locally in workerd (`node --import tsx scripts/shards-bench.ts [tiny|full2l]`):
 * the same greedy completion on both, decode tokens/s from the API's usage, and the per-hop cost
 * derived from the difference (sharded time per token − single time per token) / hops per token.
 * Stream and per-call RPC transports both. Numbers go to stdout for docs/sharding.md.
 */
import { startWorker } from "../test/worker/harness";
import { startSharded } from "../test/shard/harness";
import { synthGGUF } from "../weights-tools/fixtures";

const preset = process.argv[2] ?? "tiny";
// Per preset: the budget and context that cut the model (tiny: 1 layer + 6 head shards; full2l:
// 2 layer + 2 head shards, the plan of test/shard/full2l.test.ts), and the tokens to time.
const SETUPS: Record<string, { budget: number; context: number; tokens: number }> = {
  tiny: { budget: 19, context: 512, tokens: 64 },
  full2l: { budget: 80, context: 256, tokens: 24 },
};
const setup = SETUPS[preset];
if (!setup) {
  console.error(`usage: node --import tsx scripts/shards-bench.ts [${Object.keys(SETUPS).join("|")}]  (the 1.6B shape: scripts/shards-check-1_6b.ts)`);
  process.exit(2);
}
const model = await synthGGUF(preset, "q4_0");
const KEY = `models/${preset}.gguf`;
// Admission lifted: 64 tokens through 6 shards is past the Free plan's 50 subrequests, and the rpc
// transport invokes shards × forward passes (384 here), past the 32 invocations a request may make
// through bindings — rpc is measured as the local baseline for a hop, not as a deployable setting.
const vars = { MODEL_ID: "m", CPU_BUDGET_MS: "0", LOAD_WAIT_MS: "600000", QUEUE_DEPTH: "4", SUBREQUEST_LIMIT: "10000", SHARD_INVOCATION_LIMIT: "100000" };
const { budget, context, tokens: N } = setup;

async function run(url: string): Promise<{ tps: number; prefillMs: number }> {
  const body = JSON.stringify({ model: "m", prompt: "The quick brown fox jumps over the lazy dog", max_tokens: N, temperature: 0 });
  const post = async () => {
    const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const json = (await res.json()) as any;
    if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  await post(); // warm: loads, kernels tiered up
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push((await post()).usage);
  runs.sort((a, b) => b.decode_tokens_per_s - a.decode_tokens_per_s);
  return { tps: runs[1].decode_tokens_per_s, prefillMs: runs[1].prefill_ms };
}

// The WASM engine (the shards run its code); the Worker defaults to the reference engine.
const single = await startWorker({ vars: { ...vars, MODEL_KEY: KEY, ENGINE: "wasm" }, r2Model: model });
const a = await run(single.url);
await single.close();
const rows = [[`single isolate`, a.tps, a.prefillMs, 0]];
for (const transport of ["stream", "rpc"]) {
  const s = await startSharded({ model, key: KEY, budgetMb: budget, context, vars: { ...vars, SHARD_TRANSPORT: transport } });
  const b = await run(s.url);
  const layerShards = s.plan.shards.filter((x) => x.kind === "layers").length;
  const hops = layerShards + 1; // head shards are called in parallel: one hop's latency
  await s.close();
  rows.push([`sharded (${layerShards}+${s.plan.shards.length - layerShards} shards, ${transport})`, b.tps, b.prefillMs, (1000 / b.tps - 1000 / a.tps) / hops]);
}
console.log(`${preset} Q4_0, ${N} greedy tokens, median of 3 after a warm-up (decode tok/s from usage):`);
for (const [name, tps, pf, hop] of rows) console.log(`  ${String(name).padEnd(34)} ${Number(tps).toFixed(1).padStart(7)} tok/s   prefill ${pf} ms   per hop ${Number(hop).toFixed(2)} ms`);
