#!/usr/bin/env node
// Concurrent streams against a running sharded coordinator (scripts/shards-dev.mjs): N streamed
// completions at once, then stream events per second (each SSE data event but [DONE]; one per
// token) for all of them, and what the coordinator's /health counters say it cost per generated
// token: shard invocations and embedding range reads, the subrequests a request is charged.
//
//   node scripts/shards-streams.mjs [--url http://127.0.0.1:8787] [--streams 4] [--max-tokens 32] [--model edgelm-sharded]
import { parseArgs } from "node:util";

const USAGE = `usage: node scripts/shards-streams.mjs [--url URL] [--streams N] [--max-tokens N] [--model ID]
Starts N streamed completions at once (greedy, each its own prompt) against a sharded coordinator,
then prints stream events/s in total and per stream, and per generated token the shard invocations,
embedding range reads and steps the coordinator's /health counted. Defaults: http://127.0.0.1:8787,
4 streams, 32 tokens, model edgelm-sharded (what scripts/shards-dev.mjs serves).`;
let o;
try {
  ({ values: o } = parseArgs({
    options: {
      url: { type: "string", default: "http://127.0.0.1:8787" },
      streams: { type: "string", default: "4" },
      "max-tokens": { type: "string", default: "32" },
      model: { type: "string", default: "edgelm-sharded" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (err) {
  console.error(`shards-streams: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}
const streams = Number(o.streams);
const maxTokens = Number(o["max-tokens"]);
if (!Number.isInteger(streams) || streams < 1 || !Number.isInteger(maxTokens) || maxTokens < 1) {
  console.error(`shards-streams: --streams and --max-tokens must be positive integers\n${USAGE}`);
  process.exit(2);
}

const PROMPTS = ["Once upon a time", "The edge of the network is", "In a quiet village by the sea", "Tell me about the stars", "A recipe for bread:", "The history of Rome", "Why is the sky blue?", "Dear diary,"];

async function sharding() {
  const res = await fetch(`${o.url}/health`).catch((e) => {
    console.error(`shards-streams: ${o.url}/health: ${e.message} (is scripts/shards-dev.mjs running?)`);
    process.exit(1);
  });
  const body = await res.json();
  if (!body.sharding) {
    console.error(`shards-streams: ${o.url}/health has no sharding counters: not a sharded coordinator (status ${body.status})`);
    process.exit(1);
  }
  return body.sharding;
}

/** One streamed completion: its data events (each a token) and its tokens. */
async function stream(i) {
  const body = { model: o.model, prompt: PROMPTS[i % PROMPTS.length], max_tokens: maxTokens, temperature: 0, stream: true };
  const res = await fetch(`${o.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`stream ${i}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  const events = text.split("\n").filter((l) => l.startsWith("data: ") && l !== "data: [DONE]");
  for (const e of events) if (JSON.parse(e.slice(6)).error) throw new Error(`stream ${i}: ${e}`);
  return events.length;
}

const before = await sharding();
const t0 = performance.now();
const counts = await Promise.all(Array.from({ length: streams }, (_, i) => stream(i)));
const seconds = (performance.now() - t0) / 1000;
const after = await sharding();
const d = (k) => after[k] - before[k];
const events = counts.reduce((a, b) => a + b, 0);
console.log(`${streams} stream(s) × ${maxTokens} tokens: ${events} events in ${seconds.toFixed(2)} s: ${(events / seconds).toFixed(1)} events/s in total, ${(events / seconds / streams).toFixed(1)} per stream`);
const steps = d("shard_steps");
console.log(
  `per generated token: ${(d("shard_invocations") / events).toFixed(3)} shard invocations, ${(d("embedding_reads") / events).toFixed(3)} embedding reads ` +
    `(${d("shard_invocations")} + ${d("embedding_reads")} subrequests in all); ${steps} steps for ${d("sequence_steps")} sequence steps (mean batch ${(d("sequence_steps") / steps).toFixed(2)}), ${d("prefix_reruns")} prefix re-runs`,
);
