/**
 * The failover order (pure: a key's rendezvous ranking and a set of unhealthy replicas) and the
 * replica set's rules without workerd: when a sequence moves and when it does not, the back-off
 * before a failed replica is tried again, and each replica's admission gate. The same in real
 * workerd: test/shard/replica-failover.test.ts.
 */
import { describe, expect, it } from "vitest";
import { failoverOrder, replicaFor, replicaRanking } from "../../src/worker/shard-affinity";
import { REPLICA_RETRY_MS, ReplicaSet } from "../../src/worker/replica-set";
import { ShardError, type ShardedEngine } from "../../src/shard/engine";
import type { Engine } from "../../src/model/engine";

const keys = (n: number) => Array.from({ length: n }, (_, i) => `key-${i}`);

describe("failoverOrder over replicaRanking", () => {
  it("ranks every replica once, the key's replica first, the same every time", () => {
    for (const n of [1, 2, 3, 5, 8]) {
      for (const k of keys(200)) {
        const ranking = replicaRanking(k, n);
        expect([...ranking].sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
        expect(ranking[0]).toBe(replicaFor(k, n));
        expect(replicaRanking(k, n)).toEqual(ranking);
      }
    }
    expect(() => replicaRanking("k", 0)).toThrow(RangeError);
  });

  it("healthy replicas first in the key's order, then the unhealthy ones in the same order", () => {
    expect(failoverOrder([2, 0, 3, 1], (r) => r !== 2 && r !== 3)).toEqual([0, 1, 2, 3]);
    expect(failoverOrder([2, 0, 3, 1], () => true)).toEqual([2, 0, 3, 1]);
    expect(failoverOrder([2, 0, 3, 1], () => false)).toEqual([2, 0, 3, 1]);
  });

  it("a failed replica's keys spread evenly over the others (within 5% of an equal share), and the other keys stay", () => {
    const n = 4;
    const down = new Set([1]);
    const moved = [0, 0, 0, 0];
    let kept = 0;
    for (const k of keys(20_000)) {
      const ranking = replicaRanking(k, n);
      const to = failoverOrder(ranking, (r) => !down.has(r))[0];
      if (ranking[0] === 1) moved[to]++;
      else if (to === ranking[0]) kept++;
    }
    const total = moved.reduce((a, b) => a + b, 0);
    expect(moved[1]).toBe(0);
    for (const r of [0, 2, 3]) expect(Math.abs(moved[r] / total - 1 / 3)).toBeLessThan(0.05 / 3);
    expect(kept).toBe(20_000 - total);
  });
});

/** A fake pipeline: forward fails with `fail()` (a ShardError by default) while `broken`. */
function fakeReplica(r: number) {
  const live = new Set<unknown>();
  const state = { broken: false, fail: () => new ShardError(`shard 1 failed to load (replica ${r})`) as Error, live, maxLive: 0, forwards: 0 };
  const engine: Engine = {
    name: `r${r}`,
    config: { vocabSize: 2, contextLength: 16 },
    newSequence: () => {
      const s = {};
      live.add(s);
      state.maxLive = Math.max(state.maxLive, live.size);
      return s;
    },
    forward: async () => {
      state.forwards++;
      await new Promise((res) => setTimeout(res, 5));
      if (state.broken) throw state.fail();
      return [new Float32Array([r, 0])];
    },
    releaseSequence: (s) => void live.delete(s),
  };
  return { engine, state, pipeline: { shardFailures: new Map(), stats: { steps: 0, forwards: 0 } } as unknown as ShardedEngine };
}

function replicaSet(n: number, maxBatch = 1) {
  const clock = { t: 1_000_000 };
  const fakes = Array.from({ length: n }, (_, r) => fakeReplica(r));
  const set = new ReplicaSet(
    fakes.map((f) => f.pipeline),
    fakes.map((f) => f.engine),
    maxBatch,
    () => clock.t,
  );
  return { set, fakes, clock };
}

/** One sequence through `set` for a request ranked `ranking`: the replica that answered its first call (its logits name it). `routes` gets each replica tried, `opens` how the session open ended. */
async function openOn(set: ReplicaSet, ranking: number[], routes: [number, readonly number[]][] = [], opens: boolean[] = []): Promise<number> {
  const e = set.forRequest(ranking, { onRoute: (r, from) => routes.push([r, from]), onOpen: (served) => opens.push(served) });
  const seq = e.newSequence();
  try {
    return (await e.forward(seq, [1], 0))[0][0];
  } finally {
    e.releaseSequence!(seq);
  }
}

describe("ReplicaSet", () => {
  it("a sequence whose replica fails at session open goes to the next in its ranking, and says where from", async () => {
    const { set, fakes } = replicaSet(3);
    fakes[2].state.broken = true;
    const routes: [number, readonly number[]][] = [];
    const opens: boolean[] = [];
    expect(await openOn(set, [2, 0, 1], routes, opens)).toBe(0);
    expect(routes).toEqual([
      [2, []],
      [0, [2]],
    ]);
    // Told once, after the move: the host names the replica only then.
    expect(opens).toEqual([true]);
    expect(set.healthy(2)).toBe(false);
    // Its sequence on the failed replica was released.
    expect(fakes[2].state.live.size).toBe(0);
  });

  it("an unhealthy replica is passed over without a try until REPLICA_RETRY_MS has passed, then tried again", async () => {
    const { set, fakes, clock } = replicaSet(2);
    fakes[1].state.broken = true;
    expect(await openOn(set, [1, 0])).toBe(0);
    const tries = fakes[1].state.forwards;
    clock.t += REPLICA_RETRY_MS - 1;
    expect(set.firstChoice([1, 0])).toEqual({ replica: 0, from: [1] });
    expect(await openOn(set, [1, 0])).toBe(0);
    expect(fakes[1].state.forwards).toBe(tries);
    // Fixed meanwhile (a failed load loads on its next frame): after the back-off its keys come back.
    fakes[1].state.broken = false;
    clock.t += 1;
    expect(set.healthy(1)).toBe(true);
    expect(await openOn(set, [1, 0])).toBe(1);
  });

  it("a shard's recorded failure makes its replica unhealthy until it is REPLICA_RETRY_MS old", () => {
    const { set, fakes, clock } = replicaSet(2);
    fakes[1].pipeline.shardFailures.set(0, { shard: 0, script: "s", reason: "integrity check failed", attempts: 1, at: clock.t });
    expect(set.healthy(1)).toBe(false);
    clock.t += REPLICA_RETRY_MS;
    expect(set.healthy(1)).toBe(true);
  });

  it("every replica failing: the first one's error; an error that is not the pipeline's own does not move the sequence", async () => {
    const { set, fakes } = replicaSet(2);
    for (const f of fakes) f.state.broken = true;
    const opens: boolean[] = [];
    await expect(openOn(set, [1, 0], [], opens)).rejects.toThrow("shard 1 failed to load (replica 1)");
    const other = replicaSet(2);
    other.fakes[0].state.broken = true;
    other.fakes[0].state.fail = () => new RangeError("bad input");
    await expect(openOn(other.set, [0, 1], [], opens)).rejects.toThrow("bad input");
    expect(opens).toEqual([false, false]);
    expect(other.fakes[1].state.forwards).toBe(0);
  });

  it("never moves a sequence after its first call succeeded", async () => {
    const { set, fakes } = replicaSet(2);
    const e = set.forRequest([0, 1]);
    const seq = e.newSequence();
    await e.forward(seq, [1], 0);
    fakes[0].state.broken = true;
    await expect(e.forward(seq, [2], 1)).rejects.toThrow("replica 0");
    expect(fakes[1].state.forwards).toBe(0);
    e.releaseSequence!(seq);
  });

  it("admits maxBatch sequences per replica: a full replica's request waits while another replica runs", async () => {
    const { set, fakes } = replicaSet(2, 2);
    expect(set.liveStats().batch?.maxBatch).toBe(4);
    const runs = Array.from({ length: 5 }, () => openOn(set, [0, 1]));
    await new Promise((r) => setTimeout(r, 1));
    expect(set.occupancy(0)).toEqual({ running: 2, waiting: 3 });
    expect(await openOn(set, [1, 0])).toBe(1);
    expect(await Promise.all(runs)).toEqual([0, 0, 0, 0, 0]);
    expect(fakes[0].state.maxLive).toBe(2);
    expect(set.occupancy(0)).toEqual({ running: 0, waiting: 0 });
  });

  it("without a scheduler, the batch figures are the pipelines' own: each forward a step of one sequence", () => {
    const { set, fakes } = replicaSet(3);
    const counts = [
      { steps: 5, forwards: 7 },
      { steps: 2, forwards: 3 },
      { steps: 0, forwards: 0 },
    ];
    fakes.forEach((f, r) => Object.assign((f.pipeline as unknown as { stats: object }).stats, counts[r]));
    expect(set.liveStats().batch).toMatchObject({ steps: 7, rows: 10, sequences: 10, live: 0, waiting: 0, maxBatch: 3, lost: 0 });
  });
});
