/**
 * Runs src/worker.ts in real workerd through programmatic Miniflare, listening on a real socket,
 * with the compatibility date and flags of wrangler.toml. The Worker is bundled once per test
 * process with esbuild (as wrangler would; bundle.ts), so what is tested is what ships.
 */
export { bundleWorker, wranglerCompat } from "./bundle";
import { readFileSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
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
    await putFile(bucket, opts.vars.MODEL_KEY, opts.r2Model);
  }
  return { mf, url, logs: () => output, close: () => mf.dispose() };
}

type LocalBucket = Awaited<ReturnType<Miniflare["getR2Bucket"]>>;

/**
 * Miniflare's proxy sends an ArrayBuffer to workerd as one base64 string, and V8 strings stop at
 * 2^29 − 24 characters: a put of more than ~384 MiB throws ERR_STRING_TOO_LONG (the 0.93 GB 1.6B
 * file did). Larger files go up as an R2 multipart upload — equal parts, as R2 requires — which
 * the shards read back by range like any object. The cut is below that limit so that full2l
 * (279 MiB, test/shard/full2l.test.ts) takes the multipart path the 1.6B file needs, on CI; it is
 * also the cheaper path there (26 s for that test file and 0.9 GB of Node RSS, against 40 s and 3 GB).
 */
export const SINGLE_PUT_MAX = 256 * 2 ** 20;
const PART = 64 * 2 ** 20;

export async function putFile(bucket: LocalBucket, key: string, path: string): Promise<void> {
  const size = statSync(path).size;
  if (size <= SINGLE_PUT_MAX) {
    // A plain ArrayBuffer: Miniflare's proxy serialiser rejects Node Buffers.
    const bytes = readFileSync(path);
    await bucket.put(key, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return;
  }
  const upload = await bucket.createMultipartUpload(key);
  const fh = await open(path, "r");
  try {
    const parts = [];
    for (let at = 0, n = 1; at < size; at += PART, n++) {
      // One part in memory at a time: the Node side then holds 64 MiB and its base64, not the file.
      const buf = new ArrayBuffer(Math.min(PART, size - at));
      const { bytesRead } = await fh.read(new Uint8Array(buf), 0, buf.byteLength, at);
      if (bytesRead !== buf.byteLength) throw new Error(`${path}: short read at ${at}`);
      parts.push(await uploadPartRetrying(upload, n, buf));
    }
    await upload.complete(parts);
  } catch (e) {
    await upload.abort().catch(() => {});
    throw e;
  } finally {
    await fh.close();
  }
}

type MultipartUpload = Awaited<ReturnType<LocalBucket["createMultipartUpload"]>>;

/**
 * Under CI's load the proxy's socket to workerd has dropped mid-part (`fetch failed … write EPIPE`).
 * R2 lets a part number be uploaded again (the last upload wins), so a failed part is retried twice
 * before the setup gives up.
 */
async function uploadPartRetrying(upload: MultipartUpload, n: number, buf: ArrayBuffer) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await upload.uploadPart(n, buf);
    } catch (e) {
      if (attempt === 3) throw e;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
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

/**
 * Whether this CPU has AVX-VNNI (the VEX form V8 emits for the fused 8-bit dot), from Linux's
 * flags: where it has, workerd's self-test passes the relaxed-fused build, else relaxed is taken.
 */
export function cpuHasAvxVnni(): boolean {
  try {
    return /\bavx_vnni\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return false;
  }
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

/** The Worker's per-request JSON log lines (src/api/request-line.ts) in captured output, parsed. */
export function requestLines(output: string): Record<string, unknown>[] {
  return output.split("\n").flatMap((l) => {
    const at = l.indexOf('{"request_id"');
    if (at < 0) return [];
    try {
      return [JSON.parse(l.slice(at)) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** The JSON line of request `id`, once written. */
export const requestLine = (output: string, id: string) => requestLines(output).find((l) => l.request_id === id && "status" in l);
