/**
 * Do two instances of one Durable Object class share an isolate? In local workerd (Miniflare),
 * measured with a probe class whose module scope counts the instances it constructed: the module
 * is evaluated once per isolate, so instances that see each other's count share its globals — and
 * in production its 128 MB. Two instances of one class in one script share it here; the same
 * class in two scripts does not. Cloudflare documents the first case too (docs/sharding.md,
 * "Replicas and isolates"); what local workerd does is evidence, not proof, of what production
 * does, so replicas get their own scripts either way.
 */
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wranglerCompat } from "../worker/bundle";

const PROBE = `
import { DurableObject } from "cloudflare:workers";
// Module scope: one per isolate. (No random values at global scope in workerd: the tag is drawn by the first instance.)
let isolate;
let constructed = 0;
export class Probe extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    isolate ??= crypto.randomUUID();
    this.order = ++constructed;
  }
  hit() {
    return { isolate, constructed, order: this.order };
  }
}
export default { fetch: () => new Response("probe") };
`;

const ENTRY = `
export default {
  async fetch(req, env) {
    const u = new URL(req.url);
    const ns = env[u.searchParams.get("ns")];
    const stub = ns.get(ns.idFromName(u.searchParams.get("name")));
    return Response.json(await stub.hit());
  },
};
`;

let mf: Miniflare;
let url: string;

beforeAll(async () => {
  const compat = wranglerCompat();
  mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    workers: [
      {
        name: "entry",
        modules: true,
        script: ENTRY,
        ...compat,
        durableObjects: { ONE: { className: "Probe", scriptName: "probe-one" }, TWO: { className: "Probe", scriptName: "probe-two" } },
      },
      { name: "probe-one", modules: true, script: PROBE, ...compat, durableObjects: { PROBE: "Probe" } },
      { name: "probe-two", modules: true, script: PROBE, ...compat, durableObjects: { PROBE: "Probe" } },
    ],
  });
  url = (await mf.ready).toString().replace(/\/$/, "");
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
});

type Hit = { isolate: string; constructed: number; order: number };
const hit = async (ns: string, name: string): Promise<Hit> => (await (await fetch(`${url}/?ns=${ns}&name=${name}`)).json()) as Hit;

describe("Durable Object instances and isolates in local workerd", () => {
  it("two instances of one class in one script share the module scope (one isolate); the same class in another script has its own", async () => {
    const a = await hit("ONE", "shard");
    const b = await hit("ONE", "shard-r1");
    const c = await hit("TWO", "shard");
    // Each name is its own instance…
    expect(b.order).not.toBe(a.order);
    // …but both were constructed by the same module evaluation: the second sees the first's count.
    expect(b.isolate).toBe(a.isolate);
    expect(b.constructed).toBe(2);
    // The other script's module was evaluated on its own: its own isolate, its own count.
    expect(c.isolate).not.toBe(a.isolate);
    expect(c.constructed).toBe(1);
    // The first instance is the same object on a second call (it stayed alive), in the shared scope.
    expect(await hit("ONE", "shard")).toEqual({ ...a, constructed: 2 });
  });
});
