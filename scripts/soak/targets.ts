/**
 * The servers a soak runs against, each on loopback in a process of its own so that its RSS is its
 * own: the Worker in the bare workerd binary (test/worker/bare-workerd.ts, the tests' own starter:
 * without Miniflare's entry Worker a client disconnect reaches the Worker, as at Cloudflare), and
 * `edgelm serve` (the wasm engine with batching on) as a child Node process.
 */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startBareWorkerd } from "../../test/worker/bare-workerd";
import { localWorkerdV8Flags } from "../../test/worker/v8-flags";
import { childrenNamed } from "./proc";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

export type TargetName = "worker" | "serve";
export const TARGETS: readonly TargetName[] = ["worker", "serve"];

export interface TargetOptions {
  model: string;
  /** Requests that may wait for the engine; small, so that bursts reach the bound cheaply. */
  queueDepth: number;
  /** `edgelm serve --max-batch`; the Worker runs one generation at a time. */
  maxBatch: number;
  /** A client that reads nothing for this long is treated as gone (the fallback for a disconnect workerd did not report). */
  streamStallMs: number;
  /**
   * V8 flags for the server (heap sizing, docs/soak.md "Memory bounds"): Node's for the `edgelm
   * serve` child, workerd's config for the Worker (beside the repository's own workerd flags).
   */
  v8Flags?: string[];
}

export interface Target {
  name: TargetName;
  url: string;
  /** The process that serves: its RSS is what the soak watches. */
  pid: number;
  /** Generations that may run at once and wait beside them: a burst larger than their sum must see a 429. */
  maxRunning: number;
  queueDepth: number;
  /** The server's own output, its last 64 KiB (a failed run names what the server said). */
  logTail(): string;
  /**
   * Node's process warnings the server printed (`(node:PID) SomeWarning: …`), all of them, up to
   * 50: a listener or timer leak shows there long before it shows in RSS. Empty for workerd.
   */
  warnings(): string[];
  close(): Promise<void>;
}

export const MODEL_ID = "edgelm-tiny";

/**
 * V8's heap sizing for a soak (docs/soak.md, "In CI"): with the defaults, V8 grows its reserved
 * heap in steps and saws through it, tens of MiB either way, which hides a leak from any run
 * shorter than an hour. `edgelm serve` runs sized for memory. workerd (1.20260426) still stepped up
 * through a 3-minute run with that flag alone (6.6 ± 0.7 MiB/min), so the Worker's young generation
 * is held at 1 MiB and its old generation at 24 MiB, about twice the ~11 MB the Worker keeps live:
 * RSS is then flat from ~10 s on. A leak raises RSS and, past the cap, ends the isolate; the soak
 * sees either.
 */
export const SOAK_V8_FLAGS: Record<TargetName, readonly string[]> = {
  serve: ["--optimize-for-size"],
  worker: ["--optimize-for-size", "--max-semi-space-size=1", "--max-old-space-size=24"],
};

export async function startTarget(name: TargetName, opts: TargetOptions): Promise<Target> {
  const target = name === "worker" ? await startWorkerTarget(opts) : await startServeTarget(opts);
  try {
    await waitHealthy(target.url, 120_000);
  } catch (e) {
    await target.close();
    throw new Error(`${name}: ${(e as Error).message}\n${target.logTail()}`);
  }
  return target;
}

async function startWorkerTarget(opts: TargetOptions): Promise<Target> {
  const before = new Set(childrenNamed(process.pid, "workerd"));
  const w = await startBareWorkerd({
    model: opts.model,
    v8Flags: [...localWorkerdV8Flags(), ...(opts.v8Flags ?? [])],
    vars: {
      MODEL_KEY: "models/tiny-q4_0.gguf",
      MODEL_ID,
      ENGINE: "wasm",
      QUEUE_DEPTH: String(opts.queueDepth),
      // The budget check refuses by an estimate of CPU time: off, so every refusal the soak sees is the queue's.
      CPU_BUDGET_MS: "0",
      PREFILL_CHUNK_TOKENS: "32",
      STREAM_STALL_MS: String(opts.streamStallMs),
    },
  });
  const started = childrenNamed(process.pid, "workerd").filter((p) => !before.has(p));
  if (started.length !== 1) {
    await w.close();
    throw new Error(`worker: expected one new workerd child of process ${process.pid}, found ${started.length ? started.join(", ") : "none"}: cannot read workerd's RSS`);
  }
  return { name: "worker", url: w.url, pid: started[0], maxRunning: 1, queueDepth: opts.queueDepth, logTail: () => w.logs().slice(-65536), warnings: () => [], close: () => w.close() };
}

async function startServeTarget(opts: TargetOptions): Promise<Target> {
  const args = [
    ...(opts.v8Flags ?? []),
    join(root, "bin/edgelm.mjs"), "serve", "--model", opts.model, "--port", "0", "--host", "127.0.0.1", "--model-id", MODEL_ID,
    // One engine thread: the machines this runs on are small and shared; batching is what is under test.
    "--threads", "1", "--max-batch", String(opts.maxBatch), "--queue-depth", String(opts.queueDepth),
  ];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let tail = "";
  const keep = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-65536);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const warnings = nodeWarnings(child.stderr);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const m = tail.match(/listening on (http:\/\/\S+),/);
      if (m) {
        child.stderr.off("data", onData);
        resolve(m[1]);
      }
    };
    child.stderr.on("data", onData);
    child.once("exit", (code, signal) => reject(new Error(`edgelm serve exited (${code ?? signal}) before listening:\n${tail}`)));
  });
  return {
    name: "serve",
    url,
    pid: child.pid!,
    maxRunning: opts.maxBatch,
    queueDepth: opts.queueDepth,
    logTail: () => tail,
    warnings: () => [...warnings],
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

async function waitHealthy(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5_000) });
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`/health was not 200 within ${timeoutMs / 1000} s (last: ${last.slice(0, 300)})`);
}

/** Node's `(node:PID) NameWarning: text` lines on a stream, as they arrive (split chunks joined), up to 50. */
export function nodeWarnings(stream: NodeJS.ReadableStream): string[] {
  const found: string[] = [];
  let partial = "";
  stream.on("data", (d: Buffer | string) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (found.length < 50 && /^\(node:\d+\) \w*Warning: /.test(line)) found.push(line);
    }
  });
  return found;
}
