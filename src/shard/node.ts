/**
 * Node host for shards (tests, benchmarks, tools): the GGUF's byte ranges come from a local file,
 * and every shard runs in this process behind a LocalLink. Same runtime and engine as workerd.
 */
import { open } from "node:fs/promises";
import { compileKernelModules, dropRelaxed, enableRelaxedSimd, kernelsFromEnv } from "../engine/node";
import { LocalLink, ShardedEngine } from "./engine";
import { RangeEmbedding, type ReadBytes } from "./embedding";
import type { ShardPlan } from "./plan";
import { ShardRuntime, type RangeSource, type ShardLoadOptions } from "./runtime";

/** Range reads of a file: a fresh handle per read keeps this free of shared state. */
export function fileRanges(path: string): RangeSource & { bytes: ReadBytes } {
  const bytes: ReadBytes = async (offset, length) => {
    const fh = await open(path, "r");
    try {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(out, done, length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${path}: unexpected end at ${offset + done}`);
        done += bytesRead;
      }
      return out;
    } finally {
      await fh.close();
    }
  };
  return {
    bytes,
    async read(offset, length) {
      const data = await bytes(offset, length);
      return new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(data);
          c.close();
        },
      });
    },
  };
}

/** The kernel builds this Node can run (relaxed SIMD switched on, and EDGELM_KERNELS heeded, as the engine's own Node loader does). */
export function nodeKernels(relaxed = process.env.EDGELM_RELAXED_SIMD !== "0"): ShardLoadOptions {
  if (relaxed) enableRelaxedSimd();
  const compiled = compileKernelModules();
  if (!relaxed) dropRelaxed(compiled, "disabled by EDGELM_RELAXED_SIMD=0");
  return { modules: compiled.modules, unavailable: compiled.unavailable, force: kernelsFromEnv() };
}

export interface LocalShards {
  runtimes: ShardRuntime[];
  engine: ShardedEngine;
  embedding: RangeEmbedding;
  links: LocalLink[];
}

/** Loads every shard of `plan` from the GGUF at `path` into this process and wires the coordinator's engine to them. */
export async function loadLocalShards(plan: ShardPlan, path: string, opts: ShardLoadOptions = nodeKernels()): Promise<LocalShards> {
  const src = fileRanges(path);
  const runtimes: ShardRuntime[] = [];
  for (const s of plan.shards) runtimes.push(await ShardRuntime.load(plan, s.index, src, opts));
  const links = runtimes.map((r) => new LocalLink(r));
  const embedding = new RangeEmbedding(plan, src.bytes);
  return { runtimes, links, embedding, engine: new ShardedEngine(plan, links, embedding) };
}
