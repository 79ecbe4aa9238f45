/**
 * Timing code inside workerd, whose clock does not advance while a Worker computes: a bare
 * workerd runs a Worker of the given modules, each request runs some number of calls, and the
 * calls are timed from outside the process. Used by bench/kernels-ab.ts and bench/sampler.ts.
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../test/helpers/ports";
import { wranglerCompat } from "../test/worker/bundle";

/** A module of the Worker: a file in the probe's folder, the first one its entry point. */
export interface ProbeModule {
  name: string;
  kind: "esModule" | "wasm";
}

export interface Probe {
  /** GET /?query; the time the answer took, as the client saw it. */
  get(query: string): Promise<{ ms: number; body: string }>;
  close(): Promise<void>;
}

/** Starts the bare workerd binary on `dir`'s modules (written there by the caller) and waits until it answers `readyQuery`. */
export async function startProbe(dir: string, modules: ProbeModule[], readyQuery: string, v8Flags: string[] = []): Promise<Probe> {
  const port = await freePort();
  const list = modules.map((m) => `(name = ${JSON.stringify(m.name)}, ${m.kind} = embed ${JSON.stringify(m.name)})`);
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = (modules = [${list.join(", ")}], compatibilityDate = ${JSON.stringify(wranglerCompat().compatibilityDate)}))],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
  v8Flags = [${v8Flags.map((f) => JSON.stringify(f)).join(", ")}],
);
`,
  );
  const binary = (createRequire(createRequire(import.meta.url).resolve("miniflare"))("workerd") as { default: string }).default;
  const child = spawn(binary, ["serve", join(dir, "config.capnp")], { stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = `http://127.0.0.1:${port}`;
  const close = async () => {
    child.kill("SIGTERM");
    await exited;
  };
  const get = async (query: string) => {
    const t0 = performance.now();
    const res = await fetch(`${url}/?${query}`);
    const body = await res.text();
    if (res.status !== 200) throw new Error(`workerd: ${body}`);
    return { ms: performance.now() - t0, body };
  };
  try {
    for (let tries = 0; ; tries++) {
      try {
        await get(readyQuery);
        break;
      } catch (e) {
        if (tries > 300) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { get, close };
}

/**
 * Seconds per call of each variant, in turn for `rounds` rounds: (best time of a request making
 * 2n calls − best of one making n) / n, which takes the request's own cost out. `query(v, n)` is
 * the query that makes n calls of variant v.
 */
export async function perCall(probe: Probe, variants: string[], query: (variant: string, n: number) => string, n: number, rounds = 6): Promise<Record<string, number>> {
  const best = Object.fromEntries(variants.map((v) => [v, [Infinity, Infinity]]));
  for (let round = 0; round < rounds; round++) {
    for (const v of variants) {
      best[v][0] = Math.min(best[v][0], (await probe.get(query(v, n))).ms);
      best[v][1] = Math.min(best[v][1], (await probe.get(query(v, 2 * n))).ms);
    }
  }
  return Object.fromEntries(variants.map((v) => [v, (best[v][1] - best[v][0]) / n / 1000]));
}
