/**
 * Session affinity (src/worker/shard-affinity.ts) and SHARD_REPLICAS (src/worker/shard-replicas.ts),
 * without workerd: the key each kind of request gets, that a key keeps its replica, that keys
 * spread evenly, that adding a replica moves only the keys it takes, and the var's validation.
 */
import { describe, expect, it } from "vitest";
import { affinityOf, PROMPT_PREFIX_TOKENS, replicaFor } from "../../src/worker/shard-affinity";
import { nameReplica, parseShardReplicas, replicaChooser, replicaStubs } from "../../src/worker/shard-replicas";
import { ReplicaSet } from "../../src/worker/replica-set";
import type { ShardedEngine } from "../../src/shard/engine";
import type { Engine } from "../../src/model/engine";
import type { ShardPlan } from "../../src/shard/plan";

const headers = (h: Record<string, string> = {}) => new Headers(h);
const ids = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

describe("affinityOf", () => {
  it("takes the x-session-affinity header first, then the user field, then the prompt", () => {
    const body = { user: "alice", messages: [{ role: "user", content: "hi" }] };
    expect(affinityOf(headers({ "x-session-affinity": " s-42 " }), body, ids(3))).toEqual({ key: "s-42", by: "header" });
    expect(affinityOf(headers(), body, ids(3))).toEqual({ key: "alice", by: "user" });
    expect(affinityOf(headers({ "x-session-affinity": "  " }), { ...body, user: "" }, ids(3)).by).toBe("prompt");
  });

  it("keeps every turn of a chat on one key (system + first user message), and tells chats apart by how they open", () => {
    const system = { role: "system", content: "You are terse. ".repeat(40) };
    const turn1 = [system, { role: "user", content: "What is a shard?" }];
    const turn2 = [...turn1, { role: "assistant", content: "A piece." }, { role: "user", content: "And a replica?" }];
    const turn3 = [...turn2, { role: "assistant", content: "A copy." }, { role: "user", content: "Thanks." }];
    const keys = [turn1, turn2, turn3].map((messages) => affinityOf(headers(), { messages }, ids(400)).key);
    expect(new Set(keys).size).toBe(1);
    // A long shared system prompt does not make every chat one key.
    const other = affinityOf(headers(), { messages: [system, { role: "user", content: "What is a replica?" }] }, ids(400)).key;
    expect(other).not.toBe(keys[0]);
  });

  it("keys a completion by its first PROMPT_PREFIX_TOKENS tokens: a continued text keeps its key, another text gets another", () => {
    const start = ids(PROMPT_PREFIX_TOKENS);
    const a = affinityOf(headers(), { prompt: "…" }, start).key;
    expect(affinityOf(headers(), { prompt: "…" }, [...start, 900, 901, 902]).key).toBe(a);
    expect(affinityOf(headers(), { prompt: "…" }, [7, ...start]).key).not.toBe(a);
  });
});

describe("replicaFor", () => {
  it("is stable: the same key always gets the same replica, one replica takes everything", () => {
    for (let i = 0; i < 200; i++) {
      const key = `session-${i}`;
      const r = replicaFor(key, 4);
      expect(r).toBeGreaterThanOrEqual(0);
      expect(r).toBeLessThan(4);
      expect(replicaFor(key, 4)).toBe(r);
      expect(replicaFor(key, 1)).toBe(0);
    }
  });

  it("spreads keys evenly: within 5% of an equal share for 2, 3, 4 and 8 replicas, over sequential and random-looking keys", () => {
    const n = 20_000;
    const families = [(i: number) => `user-${i}`, (i: number) => `${(i * 2654435761) % 1e9}:${i}`, (i: number) => `chat:[["user","question number ${i}"]]`];
    for (const key of families) {
      for (const replicas of [2, 3, 4, 8]) {
        const counts = new Array<number>(replicas).fill(0);
        for (let i = 0; i < n; i++) counts[replicaFor(key(i), replicas)]++;
        const share = n / replicas;
        for (const c of counts) expect(Math.abs(c - share) / share, `${replicas} replicas: ${counts}`).toBeLessThan(0.05);
      }
    }
  });

  it("moving from N to N+1 replicas moves only the keys the new replica takes, about 1/(N+1) of them", () => {
    const n = 10_000;
    for (const replicas of [1, 2, 3, 7]) {
      let moved = 0;
      for (let i = 0; i < n; i++) {
        const before = replicaFor(`k${i}`, replicas);
        const after = replicaFor(`k${i}`, replicas + 1);
        if (after !== before) {
          moved++;
          expect(after).toBe(replicas);
        }
      }
      expect(Math.abs(moved / n - 1 / (replicas + 1))).toBeLessThan(0.02);
    }
  });

  it("refuses a replica count that is not a positive integer", () => {
    expect(() => replicaFor("k", 0)).toThrow(/positive integer/);
    expect(() => replicaFor("k", 1.5)).toThrow(/positive integer/);
  });
});

describe("SHARD_REPLICAS", () => {
  it("defaults to 1 and takes a positive integer", () => {
    expect(parseShardReplicas({})).toBe(1);
    expect(parseShardReplicas({ SHARD_REPLICAS: "" })).toBe(1);
    expect(parseShardReplicas({ SHARD_REPLICAS: " 3 " })).toBe(3);
    expect(parseShardReplicas({ SHARD_REPLICAS: 2 })).toBe(2);
  });

  it("refuses anything else with an error naming the var and the value", () => {
    for (const bad of ["0", "-1", "1.5", "two", "Infinity"]) {
      expect(() => parseShardReplicas({ SHARD_REPLICAS: bad })).toThrow(`var SHARD_REPLICAS must be an integer ≥ 1, got ${JSON.stringify(bad)}`);
    }
  });

  const plan = { shards: [{ binding: "SHARD_0", script: "edgelm-shard-0" }, { binding: "SHARD_1", script: "edgelm-shard-1" }] } as unknown as ShardPlan;
  const namespace = (seen: string[]) => ({ idFromName: (n: string) => (seen.push(n), n), get: (id: unknown) => ({ id }) });

  it("replica r reaches instance shard-r<r> through binding SHARD_<i>_R<r>; replica 0 keeps the unreplicated names", () => {
    const seen: string[] = [];
    const vars = { SHARD_0: namespace(seen), SHARD_1: namespace(seen), SHARD_0_R1: namespace(seen), SHARD_1_R1: namespace(seen) };
    const r0 = replicaStubs(plan, vars, 0, 2).map((f) => f());
    const r1 = replicaStubs(plan, vars, 1, 2).map((f) => f());
    expect([...r0, ...r1]).toEqual([{ id: "shard" }, { id: "shard" }, { id: "shard-r1" }, { id: "shard-r1" }]);
  });

  it("a replica's missing binding is an error that names it, its script, and the shard-plan option that writes it", () => {
    const vars = { SHARD_0: namespace([]), SHARD_1: namespace([]), SHARD_0_R1: namespace([]) };
    expect(() => replicaStubs(plan, vars, 1, 2)).toThrow(
      "the Durable Object binding SHARD_1_R1 (script edgelm-shard-1-r1) is missing: SHARD_REPLICAS is 2: use the wrangler.coordinator.toml that edgelm shard-plan --replicas 2 wrote",
    );
  });

  it("the served model's engineFor sends each request to its key's replica, and names it (x-edgelm-replica) once the session has opened there", async () => {
    const served = [0, 1, 2].map((r) => ({ name: `r${r}`, config: { vocabSize: 4, contextLength: 8 }, newSequence: () => ({ r }), forward: () => [] })) as unknown as Engine[];
    const pipelines = served.map(() => ({ shardFailures: new Map() })) as unknown as ShardedEngine[];
    const engineFor = replicaChooser(new ReplicaSet(pipelines, served, 1));
    for (const key of ["a", "b", "c", "d", "e", "f"]) {
      const req = new Request("http://x/v1/completions", { method: "POST", headers: { "x-session-affinity": key } });
      const engine = engineFor(req, {}, [1, 2, 3]);
      const res = new Response("");
      let named = false;
      const naming = nameReplica(req, res, { note: () => {} }).then(() => (named = true));
      await new Promise((r) => setTimeout(r, 5));
      // The headers wait for the session open: the replica may still fail over there.
      expect(named).toBe(false);
      const seq = engine.newSequence();
      await engine.forward(seq, [1, 2, 3]);
      await naming;
      expect(res.headers.get("x-edgelm-replica")).toBe(String(replicaFor(key, 3)));
      // Each replica admits one sequence here: free its place for the next key.
      engine.releaseSequence?.(seq);
    }
  });
});
