/**
 * The three servers bench/concurrency.ts puts under load, each started here and stopped by the
 * bench before the next one starts (one host on the CPUs at a time): `edgelm serve` in a child
 * process, the Worker in the bare workerd binary, and the sharded deployment in workerd
 * (Miniflare), the way `scripts/shards-dev.mjs` runs it.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { startBareWorkerd } from "../test/worker/bare-workerd";
import { startSharded } from "../test/shard/harness";
import { SHARDED_PRESETS } from "../test/shard/presets";
import { synthGGUF } from "../weights-tools/fixtures";
import { root, waitReady } from "./common";

export interface Host {
  url: string;
  /** The engine /health names. */
  engine: string;
  /** How it was started, and the engine. */
  detail: string;
  stop(): Promise<void>;
}

/** How the batching servers are configured: the same for every host. */
export interface BatchSettings {
  maxBatch: number;
  maxBatchTokens: number;
  /** Requests that may wait for admission: enough that the largest level is never refused. */
  queueDepth: number;
}

/** Loading 0.93 GB from disk on a busy 2-core machine can take minutes; a sharded start more. */
const LOAD_TIMEOUT_MS = 600_000;

/** `edgelm serve` in a child process, pinned to one thread; resolves once the model is loaded. */
export async function startServe(model: string, b: BatchSettings): Promise<Host> {
  const args = ["serve", "--model", model, "--port", "0", "--threads", "1", "--max-batch", String(b.maxBatch), "--max-batch-tokens", String(b.maxBatchTokens), "--queue-depth", String(b.queueDepth)];
  const child = spawn(process.execPath, [join(root, "bin/edgelm.mjs"), ...args], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      const m = err.match(/listening on (http:\/\/\S+),/);
      if (m) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`edgelm serve exited (${code}): ${err.slice(-500)}`)));
  });
  let stopping = false;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      if (!stopping) process.stderr.write(`edgelm serve exited (${code ?? signal}): ${err.slice(-2000)}\n`);
      resolve();
    }),
  );
  const stop = async () => {
    stopping = true;
    child.kill();
    await exited;
  };
  try {
    const { engine } = await waitReady(url, LOAD_TIMEOUT_MS);
    return { url, engine, detail: `edgelm serve ${args.slice(3).join(" ")}: ${engine}`, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The Worker in the bare workerd binary (one isolate, so one thread), the model from a folder
 * binding. MAX_BATCH and MAX_BATCH_TOKENS are passed whether or not this Worker reads them: one
 * that does not serves a generation at a time, and the figures show it.
 */
export async function startWorker(model: string, b: BatchSettings): Promise<Host> {
  const vars = {
    MODEL_KEY: "bench.gguf",
    MODEL_ID: "bench",
    ENGINE: "wasm",
    CPU_BUDGET_MS: "0",
    LOAD_WAIT_MS: String(LOAD_TIMEOUT_MS),
    QUEUE_DEPTH: String(b.queueDepth),
    MAX_BATCH: String(b.maxBatch),
    MAX_BATCH_TOKENS: String(b.maxBatchTokens),
  };
  const w = await startBareWorkerd({ model, vars });
  try {
    const { engine } = await waitReady(w.url, LOAD_TIMEOUT_MS);
    return { url: w.url, engine, detail: `Worker in bare workerd, MAX_BATCH=${b.maxBatch} MAX_BATCH_TOKENS=${b.maxBatchTokens} QUEUE_DEPTH=${b.queueDepth}: ${engine}`, stop: () => w.close() };
  } catch (e) {
    console.error(w.logs().slice(-2000));
    await w.close();
    throw e;
  }
}

/**
 * What `node scripts/shards-dev.mjs --preset P` deploys (its budget and context for P), with the
 * batching vars added: the coordinator and one Worker per shard in workerd, the GGUF, its plan
 * and row hashes in local R2.
 */
export async function startShardedHost(preset: string, b: BatchSettings): Promise<Host> {
  const setup = SHARDED_PRESETS[preset];
  if (!setup) throw new Error(`no sharded preset ${JSON.stringify(preset)}: one of ${Object.keys(SHARDED_PRESETS).join(", ")}`);
  const model = await synthGGUF(preset, "q4_0");
  const dep = await startSharded({
    model,
    key: `models/${model.split("/").pop()}`,
    ...setup,
    vars: {
      MODEL_ID: "edgelm-sharded",
      CPU_BUDGET_MS: "0",
      LOAD_WAIT_MS: String(LOAD_TIMEOUT_MS),
      SHARD_TRANSPORT: "stream",
      QUEUE_DEPTH: String(b.queueDepth),
      MAX_BATCH: String(b.maxBatch),
      MAX_BATCH_TOKENS: String(b.maxBatchTokens),
    },
    hashesFrom: model,
  });
  try {
    const { engine } = await waitReady(dep.url, LOAD_TIMEOUT_MS);
    return { url: dep.url, engine, detail: `sharded ${preset} (budget ${setup.budgetMb} MiB, context ${setup.context}) in workerd, MAX_BATCH=${b.maxBatch}: ${engine}`, stop: () => dep.close() };
  } catch (e) {
    console.error(dep.logs().slice(-2000));
    await dep.close();
    throw e;
  }
}
