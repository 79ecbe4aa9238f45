/**
 * `download --gguf OWNER/REPO/PATH.gguf`: one ready-made GGUF from the Hugging Face Hub, checked
 * against the sha256 the Hub records for it and renamed into place only once it matches and parses
 * as GGUF, so the final name never holds a partial or wrong file.
 */
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createHash } from "node:crypto";
import { manifestPathFor, parseManifest } from "../src/gguf/manifest";
import { openGGUF } from "../src/gguf/node";
import { metaNumber, metaString } from "../src/gguf/metadata";
import { typeName } from "../src/gguf/quant";
import type { GGUFHeader } from "../src/gguf/reader";
import { GGUF_MAGIC } from "../src/gguf/types";
import { DEFAULT_ENDPOINT, fileURL, REPO_ID } from "./download";
import { hubFileInfo, type HubFileInfo } from "./hub-file-info";
import { removeManifest, writeManifest } from "./manifest";
import { downloadPart, removePart, type RetryOptions } from "./resumable-download";

export interface GGUFRef {
  /** "owner/name". */
  repo: string;
  /** Path inside the repo, ending in .gguf. */
  path: string;
}

export interface GGUFDownloadOptions extends RetryOptions {
  /** "OWNER/REPO/PATH.gguf". */
  spec: string;
  /** A folder (the file keeps its name) or a path ending in .gguf. Default "models". */
  out?: string;
  endpoint?: string;
  revision?: string;
  /** Sent as a Bearer token to the Hub's own origin only; defaults to $HF_TOKEN. */
  token?: string;
}

export interface GGUFDownloadResult {
  path: string;
  sha256: string;
  bytes: number;
  /** True when the file was already there with the right sha256. */
  skipped: boolean;
  /** The commit the revision resolved to, when the Hub said. */
  commit?: string;
  /** One line: architecture, name, layers, tensor types. */
  summary: string;
}

/** "owner/name/dir/file.gguf" → repo and path; a message a user can act on otherwise. */
export function parseGGUFRef(spec: string): GGUFRef {
  const parts = spec.split("/");
  const repo = parts.slice(0, 2).join("/");
  const path = parts.slice(2).join("/");
  if (parts.length < 3 || !REPO_ID.test(repo) || repo.includes("..")) throw new Error(`--gguf must be "OWNER/REPO/PATH.gguf", got "${spec}"`);
  if (parts.slice(2).some((p) => p === "" || p === "." || p === "..")) throw new Error(`--gguf: "${path}" is not a plain path inside the repo`);
  if (!/\.gguf$/i.test(path)) throw new Error(`--gguf must name a .gguf file, got "${path}"`);
  return { repo, path };
}

/** A path ending in .gguf is the file; anything else (or an existing folder) is the folder for it. */
export async function resolveOut(out: string, ref: GGUFRef): Promise<string> {
  const isDir = await stat(out).then((s) => s.isDirectory(), () => false);
  return !isDir && /\.gguf$/i.test(out) ? out : join(out, basename(ref.path));
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Architecture, name, layers and the tensor types by count, from the file's header. */
export function ggufSummary(h: GGUFHeader): string {
  const arch = metaString(h.metadata, "general.architecture") ?? "unknown architecture";
  const name = metaString(h.metadata, "general.name");
  const layers = metaNumber(h.metadata, `${arch}.block_count`);
  const types = new Map<string, number>();
  for (const t of h.tensors) types.set(typeName(t.type), (types.get(typeName(t.type)) ?? 0) + 1);
  const byCount = [...types].sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t} ×${n}`);
  return [arch, name && `"${name}"`, layers !== undefined && `${layers} layers`, `${h.tensors.length} tensors (${byCount.join(", ")})`].filter(Boolean).join(", ");
}

/** The magic decides what is a GGUF: a file that is not one never gets the final name. */
async function hasGGUFMagic(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const b = Buffer.alloc(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    return bytesRead === 4 && b.readUInt32LE(0) === GGUF_MAGIC;
  } finally {
    await fh.close();
  }
}

/**
 * The summary from the parsed header. A header edgelm cannot parse (a tensor type it does not
 * know) does not make the Hub's verified file wrong, so it is kept and the reason reported.
 */
async function describeGGUF(path: string): Promise<string> {
  try {
    const g = await openGGUF(path);
    await g.close();
    if (g.totalSize > g.size) return `truncated? its tensors need ${g.totalSize} bytes, the file has ${g.size}`;
    return ggufSummary(g);
  } catch (e) {
    return `a GGUF edgelm cannot read (${(e as Error).message.replace(`${path}: `, "")})`;
  }
}

/** The renamed file survives a crash only once its folder's entry is on disk too. */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems cannot fsync a folder; the rename is still atomic there.
  }
}

/**
 * The step after a verified file is in place: its integrity manifest beside it, so serving checks
 * the file as it loads (a manifest already there for these very bytes is kept). A header edgelm
 * cannot parse has no tensors to list: the file is kept without one, and the reason is said.
 */
async function afterVerifiedDownload(ggufPath: string, sha256: string, info: (line: string) => void): Promise<void> {
  const where = manifestPathFor(ggufPath);
  const current = await readFile(where, "utf8").then((t) => parseManifest(t, where), () => undefined);
  if (current?.file.sha256 === sha256) return;
  try {
    await writeManifest(ggufPath);
    info(`wrote ${where}`);
  } catch (e) {
    await removeManifest(ggufPath);
    info(`no manifest written for ${ggufPath}: ${(e as Error).message.replace(`${ggufPath}: `, "")}`);
  }
}

export async function downloadGGUF(opts: GGUFDownloadOptions): Promise<GGUFDownloadResult> {
  const ref = parseGGUFRef(opts.spec);
  const endpoint = opts.endpoint ?? DEFAULT_ENDPOINT;
  const revision = opts.revision ?? "main";
  const token = opts.token ?? process.env.HF_TOKEN ?? undefined;
  const info = opts.onInfo ?? (() => {});
  const hub: HubFileInfo = await hubFileInfo({ endpoint, repo: ref.repo, revision, path: ref.path, token: token || undefined });
  info(`${ref.repo}/${ref.path}: sha256 ${hub.sha256}${hub.size !== undefined ? `, ${hub.size} bytes` : ""}${hub.commit ? `, commit ${hub.commit.slice(0, 12)}` : ""} (from ${hub.from})`);
  const dest = await resolveOut(opts.out ?? "models", ref);
  await mkdir(dirname(dest), { recursive: true });

  const existing = await stat(dest).then((s) => s.size, () => undefined);
  if (existing !== undefined && (hub.size === undefined || existing === hub.size)) {
    info(`${dest} exists: checking its sha256`);
    if ((await sha256Of(dest)) === hub.sha256 && (await hasGGUFMagic(dest))) {
      const summary = await describeGGUF(dest);
      await afterVerifiedDownload(dest, hub.sha256, info);
      return { path: dest, sha256: hub.sha256, bytes: existing, skipped: true, commit: hub.commit, summary };
    }
  }
  if (existing !== undefined) info(`${dest} exists but differs from the Hub's file: downloading it again (replaced only once the new copy checks out)`);

  const part = `${dest}.part`;
  // Pinned to the commit the HEAD saw, so a push in the middle cannot mix two versions.
  const url = fileURL(endpoint, ref.repo, hub.commit ?? revision, ref.path);
  const { retries, retryDelayMs, idleTimeoutMs, onProgress } = opts;
  const got = await downloadPart({ url, part, sha256: hub.sha256, size: hub.size, token: token || undefined, retries, retryDelayMs, idleTimeoutMs, onProgress, onInfo: info });
  if (got.sha256 !== hub.sha256) {
    await removePart(part);
    throw new Error(`${ref.repo}/${ref.path}: sha256 mismatch: the download's is ${got.sha256}, the Hub says ${hub.sha256}; the partial file was deleted (run again to download it afresh)`);
  }
  if (!(await hasGGUFMagic(part))) {
    await removePart(part);
    throw new Error(`${ref.repo}/${ref.path} is not a GGUF file (it does not start with "GGUF"); the download was deleted`);
  }
  const summary = await describeGGUF(part);
  await rename(part, dest);
  await syncDir(dirname(dest));
  await removePart(part);
  await afterVerifiedDownload(dest, got.sha256, info);
  return { path: dest, sha256: got.sha256, bytes: got.bytes, skipped: false, commit: hub.commit, summary };
}
