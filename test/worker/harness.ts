/**
 * Runs src/worker.ts in real workerd through programmatic Miniflare, listening on a real socket,
 * with the compatibility date and flags of wrangler.toml. The Worker is bundled once per test
 * process with esbuild (as wrangler would; bundle.ts), so what is tested is what ships.
 */
export { bundleWorker, wranglerCompat } from "./bundle";
import { readFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { Miniflare, type MiniflareOptions } from "miniflare";
import { bundleWorker, wranglerCompat } from "./bundle";
import { localWorkerdV8Flags, useWorkerdV8Flags } from "./v8-flags";
import { synthGGUF } from "../../weights-tools/fixtures";
import { vi } from "vitest";

/** The smallest model with the real vocabulary: local R2 puts are slow, so keep it small. */
export const TEST_MODEL = { preset: "tiny", type: "q4_0" } as const;

export interface WorkerUnderTest {
  mf: Miniflare;
  url: string;
  /** Everything the Worker wrote to stdout/stderr (console.log), to check what is logged. */
  logs(): string;
  close(): Promise<void>;
}

export interface StartOptions {
  vars: Record<string, string>;
  /** Put this file into the R2 binding MODELS under vars.MODEL_KEY before the first request. */
  r2Model?: string;
  serviceBindings?: MiniflareOptions["serviceBindings"];
}

export async function startWorker(opts: StartOptions): Promise<WorkerUnderTest> {
  const modules = await bundleWorker();
  // On 2 cores a workerd with several isolates can livelock in V8's GC (v8-flags.ts).
  useWorkerdV8Flags(localWorkerdV8Flags());
  let output = "";
  const capture = (s: Readable) => s.on("data", (d) => (output += String(d)));
  const mf = new Miniflare({
    modules,
    ...wranglerCompat(),
    bindings: opts.vars,
    r2Buckets: ["MODELS"],
    serviceBindings: opts.serviceBindings,
    host: "127.0.0.1",
    port: 0,
    handleRuntimeStdio: (stdout: Readable, stderr: Readable) => {
      capture(stdout);
      capture(stderr);
    },
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  if (opts.r2Model) {
    const bucket = await mf.getR2Bucket("MODELS");
    // A plain ArrayBuffer: Miniflare's proxy serialiser rejects Node Buffers.
    const bytes = readFileSync(opts.r2Model);
    await bucket.put(opts.vars.MODEL_KEY, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  return { mf, url, logs: () => output, close: () => mf.dispose() };
}

export function testModelPath(): Promise<string> {
  return synthGGUF(TEST_MODEL.preset, TEST_MODEL.type);
}

/** Splits an SSE body into `data:` payloads and comments. */
export function parseSSE(raw: string): { data: string[]; comments: string[] } {
  const data: string[] = [];
  const comments: string[] = [];
  for (const block of raw.split(/\n\n/)) {
    const lines = block.split("\n").filter(Boolean);
    const d = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
    if (d.length) data.push(d.join("\n"));
    comments.push(...lines.filter((l) => l.startsWith(":")));
  }
  return { data, comments };
}

/** Resolves once the Worker's /health answers 200 (the model loaded from R2). */
export async function waitHealthy(w: Pick<WorkerUnderTest, "url">, timeout = 60_000): Promise<void> {
  await vi.waitFor(
    async () => {
      const res = await fetch(`${w.url}/health`);
      if (res.status !== 200) throw new Error(`health ${res.status}: ${await res.text()}`);
    },
    { timeout, interval: 100 },
  );
}
