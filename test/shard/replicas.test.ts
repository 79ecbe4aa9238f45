/**
 * Two replicated shard pipelines (SHARD_REPLICAS = 2) in real workerd: the coordinator and two
 * replicas of each shard, every replica its own script, as `edgelm shard-plan --replicas 2`
 * deploys them. A request's replica is read from the `x-edgelm-replica` response header and
 * checked against /health's per-replica counts (which pipeline's shards did the work): requests
 * with the same affinity key (header, `user`, or chat opening) land on one replica every time,
 * different keys use both, and both replicas give the same tokens for the same seeded request.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { affinityOf, replicaFor } from "../../src/worker/shard-affinity";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE } from "../worker/harness";
import { health, settledHealth, startSharded, type ShardedUnderTest } from "./harness";

const KEY = "models/tiny-q4_0.gguf";
const MODEL = "edgelm-tiny";
const VARS = { MODEL_ID: MODEL, QUEUE_DEPTH: "8", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0", PREFILL_CHUNK_TOKENS: "8" };
// A roomy budget: the tiny model in one layer shard and one head shard, so two replicas are four shard isolates.
const BUDGET_MB = 120;
const CONTEXT = 128;

let dep: ShardedUnderTest;

beforeAll(async () => {
  const model = await synthGGUF("tiny", "q4_0");
  dep = await startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS, replicas: 2 });
  const h = await settledHealth(dep.url).catch((e) => {
    console.log(dep.logs());
    throw e;
  });
  expect(h.status, JSON.stringify(h.body)).toBe(200);
}, 120_000);

afterAll(async () => {
  await dep?.close();
});

interface Served {
  status: number;
  replica: string | null;
  text: string;
  json: any;
}

async function post(path: "completions" | "chat/completions", body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Served> {
  const res = await fetch(`${dep.url}/v1/${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ model: MODEL, ...body }) });
  const raw = await res.text();
  const json = body.stream ? parseSSE(raw).data.filter((d) => d !== "[DONE]").map((d) => JSON.parse(d)) : JSON.parse(raw);
  const text = body.stream ? json.map((e: any) => e.choices?.[0]?.text ?? "").join("") : (json.choices?.[0]?.text ?? json.choices?.[0]?.message?.content ?? raw);
  return { status: res.status, replica: res.headers.get("x-edgelm-replica"), text, json };
}

/** Frames each replica's shards have answered so far. */
const framesByReplica = async (): Promise<number[]> => ((await health(dep.url)).body.sharding.replicas as { shard_frames: number }[]).map((r) => r.shard_frames);

/** `served` went through replica `want`, and only that replica's shards answered frames for it. */
async function servedBy(request: () => Promise<Served>, want: number): Promise<Served> {
  const before = await framesByReplica();
  const r = await request();
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  expect(r.replica).toBe(String(want));
  const after = await framesByReplica();
  after.forEach((f, i) => (i === want ? expect(f).toBeGreaterThan(before[i]) : expect(f, `replica ${i} did work for a request of replica ${want}`).toBe(before[i])));
  return r;
}

/** The first of `candidates` that replicaFor sends to each replica: keys known to land on 0 and on 1. */
function keysForEachReplica(candidates: string[]): [string, string] {
  const k0 = candidates.find((k) => replicaFor(k, 2) === 0);
  const k1 = candidates.find((k) => replicaFor(k, 2) === 1);
  if (!k0 || !k1) throw new Error("no candidate key for one of the replicas");
  return [k0, k1];
}

const sessions = keysForEachReplica(Array.from({ length: 16 }, (_, i) => `session-${i}`));

describe("replicated shard pipelines (SHARD_REPLICAS = 2) in workerd", () => {
  it("/health shows both replicas; no generation has a replica yet and /health itself names none", async () => {
    const res = await fetch(`${dep.url}/health`);
    expect(res.headers.get("x-edgelm-replica")).toBeNull();
    const body = (await res.json()) as any;
    expect(body.sharding.replicas.map((r: any) => r.replica)).toEqual([0, 1]);
  });

  it("the same x-session-affinity header lands on the same replica every time; different sessions use both", async () => {
    for (const [want, session] of sessions.entries()) {
      for (let i = 0; i < 3; i++) {
        await servedBy(() => post("completions", { prompt: `Request ${i} of ${session}`, max_tokens: 3, temperature: 0 }, { "x-session-affinity": session }), want);
      }
    }
    // Each replica's shards loaded once: two instances of every shard, one per replica script.
    for (const s of dep.plan.shards) expect(dep.logs().match(new RegExp(`edgelm shard ${s.index} \\(${s.script}\\): loaded in`, "g"))).toHaveLength(2);
    // The request's log line names its replica and why.
    expect(dep.logs()).toContain(`"notes":["replica 1 by header"]`);
    // A page may read the header (and send the affinity header: the preflight allows what it is asked for).
    const res = await fetch(`${dep.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: "https://page.example", "x-session-affinity": sessions[1] },
      body: JSON.stringify({ model: MODEL, prompt: "Hi", max_tokens: 1 }),
    });
    await res.text();
    expect(res.headers.get("x-edgelm-replica")).toBe("1");
    expect(res.headers.get("access-control-expose-headers")?.split(/,\s*/)).toContain("x-edgelm-replica");
  });

  it("the same user field lands on the same replica every time (streamed or not)", async () => {
    const users = keysForEachReplica(Array.from({ length: 16 }, (_, i) => `user-${i}`));
    for (const [want, user] of users.entries()) {
      for (const stream of [false, true, false]) {
        await servedBy(() => post("completions", { prompt: "Hello there", max_tokens: 3, temperature: 0, user, stream }), want);
      }
    }
  });

  it("every turn of a chat stays on its replica with no header and no user: the turns share the opening", async () => {
    const openings = Array.from({ length: 16 }, (_, i) => [
      { role: "system", content: "You are a terse assistant." },
      { role: "user", content: `Question ${i}: what is a shard?` },
    ]);
    const key = (messages: object[]) => affinityOf(new Headers(), { messages }, []).key;
    const seen = new Set<number>();
    for (const opening of openings.slice(0, 4)) {
      const want = replicaFor(key(opening), 2);
      seen.add(want);
      let messages: object[] = opening;
      for (let turn = 0; turn < 3; turn++) {
        const r = await servedBy(() => post("chat/completions", { messages, max_tokens: 3, temperature: 0 }), want);
        messages = [...messages, { role: "assistant", content: r.text }, { role: "user", content: `And turn ${turn + 2}?` }];
      }
    }
    // Four chats that open differently did not all go to one replica.
    expect(seen.size, "the four chats' openings all hash to one replica: pick other openings").toBe(2);
  });

  it("both replicas give the same tokens for the same seeded request", async () => {
    const body = { prompt: "The edge of the network", max_tokens: 12, temperature: 0.9, top_p: 0.95, seed: 11, logprobs: 2 };
    const [a, b] = [await servedBy(() => post("completions", body, { "x-session-affinity": sessions[0] }), 0), await servedBy(() => post("completions", body, { "x-session-affinity": sessions[1] }), 1)];
    expect(a.json.usage.completion_tokens).toBe(12);
    expect(b.text).toBe(a.text);
    expect(b.json.choices[0].logprobs.token_logprobs).toEqual(a.json.choices[0].logprobs.token_logprobs);
  });
});

describe("SHARD_REPLICAS misconfigured (workerd)", () => {
  const cases: [string, Record<string, string>, string][] = [
    ["a value that is not a whole number ≥ 1", { SHARD_REPLICAS: "two" }, `var SHARD_REPLICAS must be an integer ≥ 1, got "two"`],
    ["more replicas than the coordinator has bindings for", { SHARD_REPLICAS: "2" }, "the Durable Object binding SHARD_0_R1 (script edgelm-shard-0-r1) is missing: SHARD_REPLICAS is 2: use the wrangler.coordinator.toml that edgelm shard-plan --replicas 2 wrote"],
  ];
  for (const [name, vars, reason] of cases) {
    it(`${name}: /health says failed, naming the var or the binding`, async () => {
      const model = await synthGGUF("tiny", "q4_0");
      const bad = await startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: { ...VARS, ...vars } });
      try {
        const h = await settledHealth(bad.url);
        expect(h.status).toBe(503);
        expect(h.body).toMatchObject({ status: "failed", reason });
      } finally {
        await bad.close();
      }
    }, 60_000);
  }
});
