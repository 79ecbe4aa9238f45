/**
 * What the Hugging Face Hub says a large (LFS) file is: its sha256, its size and the commit the
 * revision points at, so a download can be pinned to that commit and checked byte for byte.
 *
 * First a HEAD on the file's `/resolve/` URL without following the redirect to the CDN: the Hub
 * puts the LFS sha256 in `x-linked-etag`, the size in `x-linked-size` and the commit in
 * `x-repo-commit` on that redirect. This is the URL the download itself uses, so it also works with
 * mirrors that proxy only `/resolve/`. When a mirror drops those headers, the Hub's JSON API answers
 * instead: `POST /api/models/{repo}/paths-info/{revision}` with `{"paths": [path]}` lists the file
 * with `lfs.oid` (the sha256) and `lfs.size`.
 */
import { fileURL } from "./download";
import { hubRequest, networkMessage } from "./hub-request";

export interface HubFileInfo {
  sha256: string;
  /** Bytes; undefined when the Hub did not say. */
  size?: number;
  /** The commit the revision resolved to; undefined when the Hub did not say. */
  commit?: string;
  /** Where the sha256 came from (for the log). */
  from: "x-linked-etag" | "paths-info";
}

export interface HubFileRef {
  endpoint: string;
  /** "owner/name". */
  repo: string;
  revision: string;
  /** Path inside the repo. */
  path: string;
  token?: string;
}

const SHA256 = /^[0-9a-f]{64}$/;
const COMMIT = /^[0-9a-f]{40}$/;

/** An ETag's opaque value: without `W/` and the quotes. */
export function etagValue(etag: string | null): string | undefined {
  return etag?.trim().replace(/^W\//, "").replace(/^"(.*)"$/, "$1") || undefined;
}

function byteCount(v: string | null | undefined): number | undefined {
  return v && /^\d+$/.test(v) ? Number(v) : undefined;
}

function statusError(what: string, res: Response): Error {
  if (res.status === 401 || res.status === 403) return new Error(`${what}: HTTP ${res.status} (gated or private repo? accept its licence on the Hub and set HF_TOKEN)`);
  if (res.status === 404) return new Error(`${what}: not found (HTTP 404)`);
  return new Error(`${what}: HTTP ${res.status} ${res.statusText}`);
}

export async function hubFileInfo(ref: HubFileRef): Promise<HubFileInfo> {
  const url = fileURL(ref.endpoint, ref.repo, ref.revision, ref.path);
  const what = `${ref.repo}/${ref.path} at ${ref.revision}`;
  let head: Response;
  try {
    head = await hubRequest(url, { method: "HEAD", token: ref.token, crossOrigin: false });
  } catch (e) {
    throw new Error(`cannot reach ${url}: ${networkMessage(e)}`);
  }
  if (head.status >= 400) throw statusError(what, head);
  const commitHeader = head.headers.get("x-repo-commit") ?? "";
  const commit = COMMIT.test(commitHeader) ? commitHeader : undefined;
  const linked = etagValue(head.headers.get("x-linked-etag"))?.toLowerCase();
  if (linked && SHA256.test(linked)) {
    const size = byteCount(head.headers.get("x-linked-size")) ?? (head.status === 200 ? byteCount(head.headers.get("content-length")) : undefined);
    return { sha256: linked, size, commit, from: "x-linked-etag" };
  }
  const fromApi = await pathsInfo(ref, commit ?? ref.revision, what);
  return { ...fromApi, commit, from: "paths-info" };
}

async function pathsInfo(ref: HubFileRef, revision: string, what: string): Promise<{ sha256: string; size?: number }> {
  const url = `${ref.endpoint.replace(/\/+$/, "")}/api/models/${ref.repo}/paths-info/${encodeURIComponent(revision)}`;
  let res: Response;
  try {
    res = await hubRequest(url, { method: "POST", token: ref.token, headers: { "content-type": "application/json", accept: "application/json" }, body: JSON.stringify({ paths: [ref.path] }) });
  } catch (e) {
    throw new Error(`cannot reach ${url}: ${networkMessage(e)}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`${what}: the Hub sent no x-linked-etag and its paths-info API answered HTTP ${res.status}, so there is no sha256 to check the download against`);
  }
  let list: unknown;
  try {
    list = await res.json();
  } catch {
    throw new Error(`${what}: paths-info did not answer JSON`);
  }
  const entry = Array.isArray(list) ? (list as { path?: unknown; lfs?: { oid?: unknown; size?: unknown } }[]).find((e) => e?.path === ref.path) : undefined;
  if (!entry) throw new Error(`${what}: not found (paths-info does not list it)`);
  const oid = typeof entry.lfs?.oid === "string" ? entry.lfs.oid.toLowerCase() : "";
  if (!SHA256.test(oid)) throw new Error(`${what}: not stored with Git LFS, so the Hub has no sha256 to check the download against`);
  const size = typeof entry.lfs?.size === "number" && Number.isSafeInteger(entry.lfs.size) ? entry.lfs.size : undefined;
  return { sha256: oid, size };
}
