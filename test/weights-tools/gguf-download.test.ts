import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { manifestPathFor } from "../../src/gguf/manifest";
import { downloadGGUF, parseGGUFRef } from "../../weights-tools/gguf-download";
import { synthGGUF } from "../../weights-tools/fixtures";
import { partRecordPath } from "../../weights-tools/resumable-download";
import { startFakeHub, type FakeHub } from "../helpers/fake-hub";
import { tempDir } from "./helpers";

const SPEC = "stabilityai/stablelm-2-zephyr-1_6b/stablelm-2-zephyr-1_6b-Q4_0.gguf";
const NOT_GGUF = "someone/not-a-model/weights/model.gguf";
const ODD_GGUF = "someone/odd-model/odd.gguf";
const root = tempDir("gguf-download");
let hub: FakeHub;
let model: Buffer;
let run = 0;
const outDir = () => join(root, `out-${++run}`);
const fast = { retryDelayMs: 5, token: "hf_secret" };
/** The manifest synth wrote beside the same bytes: a download's must be the same. */
let modelManifest: string;

beforeAll(async () => {
  const gguf = await synthGGUF("tiny", "q4_0", 0);
  model = readFileSync(gguf);
  modelManifest = readFileSync(manifestPathFor(gguf), "utf8");
  const junk = join(root, "junk.gguf");
  writeFileSync(junk, randomBytes(4096));
  // The magic and version of a GGUF, then bytes no reader can make a header of.
  const odd = join(root, "odd.gguf");
  writeFileSync(odd, Buffer.concat([Buffer.from("GGUF"), Buffer.from([3, 0, 0, 0]), Buffer.alloc(16, 0xff), randomBytes(2000)]));
  hub = await startFakeHub({ [SPEC]: gguf, [NOT_GGUF]: junk, [ODD_GGUF]: odd });
});

afterAll(async () => {
  await hub?.close();
  rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
  Object.assign(hub.mode, { drops: 0, dropAfter: 0, stall: false, partFile: undefined, lieSha: false, ignoreRange: false, viaCdn: false, linkedHeaders: true, hideSize: false, etag: '"v1"' });
  hub.requests.length = 0;
});

const partOf = (dir: string) => join(dir, "stablelm-2-zephyr-1_6b-Q4_0.gguf.part");
const gets = () => hub.requests.filter((r) => r.method === "GET");
/** A part of `bytes` random bytes (and its record, when given) as an earlier run might have left. */
function leavePart(dir: string, bytes: number, record?: { sha256: string; etag: string }): void {
  mkdirSync(dir, { recursive: true });
  const part = partOf(dir);
  writeFileSync(part, randomBytes(bytes));
  if (record) writeFileSync(partRecordPath(part), JSON.stringify(record));
}
const leftovers = (dir: string) => ["stablelm-2-zephyr-1_6b-Q4_0.gguf.part", "stablelm-2-zephyr-1_6b-Q4_0.gguf.part.json"].filter((f) => existsSync(join(dir, f)));

describe("download --gguf (library)", () => {
  it("downloads, checks the sha256, pins the commit and reports what the file is", async () => {
    const dir = outDir();
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast });
    expect(r.path).toBe(join(dir, "stablelm-2-zephyr-1_6b-Q4_0.gguf"));
    expect(readFileSync(r.path).equals(model)).toBe(true);
    expect(r.sha256).toBe(hub.sha256(SPEC));
    expect(r).toMatchObject({ skipped: false, bytes: model.length, commit: hub.commit });
    expect(r.summary).toMatch(/^stablelm, "edgelm-synth-tiny \(random weights\)", 2 layers, \d+ tensors \(Q4_0 ×\d+, F32 ×\d+/);
    expect(readFileSync(manifestPathFor(r.path), "utf8")).toBe(modelManifest);
    expect(leftovers(dir)).toEqual([]);
    expect(hub.requests.map((q) => `${q.method} ${q.url}`)).toEqual([
      `HEAD /stabilityai/stablelm-2-zephyr-1_6b/resolve/main/stablelm-2-zephyr-1_6b-Q4_0.gguf`,
      `GET /stabilityai/stablelm-2-zephyr-1_6b/resolve/${hub.commit}/stablelm-2-zephyr-1_6b-Q4_0.gguf`,
    ]);
    expect(hub.requests.every((q) => q.auth === "Bearer hf_secret")).toBe(true);
  });

  it("resumes after dropped connections and still hashes right", async () => {
    const dir = outDir();
    Object.assign(hub.mode, { drops: 2, dropAfter: Math.floor(model.length / 3), partFile: partOf(dir) });
    const infos: string[] = [];
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast, onInfo: (m) => infos.push(m) });
    expect(readFileSync(r.path).equals(model)).toBe(true);
    const g = gets();
    expect(g).toHaveLength(3);
    expect(g[0].range).toBeUndefined();
    expect(g[1].range).toBe(`bytes=${hub.mode.dropAfter}-`);
    expect(g[2].range).toBe(`bytes=${2 * hub.mode.dropAfter}-`);
    expect(g[1].ifRange).toBe('"v1"');
    expect(infos.filter((m) => /connection dropped.*retry/.test(m))).toHaveLength(2);
  });

  it("drops a connection that goes silent and resumes it", async () => {
    const dir = outDir();
    Object.assign(hub.mode, { drops: 1, dropAfter: 200_000, stall: true });
    const infos: string[] = [];
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast, idleTimeoutMs: 300, onInfo: (m) => infos.push(m) });
    expect(readFileSync(r.path).equals(model)).toBe(true);
    expect(gets().map((q) => q.range)).toEqual([undefined, "bytes=200000-"]);
    expect(infos.some((m) => /no data for 0\.3 s; retry 1 of 5/.test(m))).toBe(true);
  }, 30_000);

  it("gives up after the retries without progress, keeps the part, and the next run resumes it (hashing the part first)", async () => {
    const dir = outDir();
    const part = partOf(dir);
    Object.assign(hub.mode, { drops: 1, dropAfter: 300_000, partFile: part });
    await expect(downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast, retries: 0 })).rejects.toThrow(/connection dropped.*gave up after 0 retries at byte 300000 of \d+ \(run the same command again to resume\)/);
    expect(statSync(part).size).toBe(300_000);
    // A failure that gains no byte counts against the retries; one that gains some starts the count again.
    Object.assign(hub.mode, { drops: 3, dropAfter: 0 });
    hub.requests.length = 0;
    await expect(downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast, retries: 2 })).rejects.toThrow(/gave up after 2 retries at byte 300000/);
    expect(gets().map((q) => q.range)).toEqual(["bytes=300000-", "bytes=300000-", "bytes=300000-"]);
    expect(existsSync(join(dir, "stablelm-2-zephyr-1_6b-Q4_0.gguf"))).toBe(false);
    hub.requests.length = 0;
    const infos: string[] = [];
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast, onInfo: (m) => infos.push(m) });
    expect(readFileSync(r.path).equals(model)).toBe(true);
    expect(gets().map((q) => q.range)).toEqual(["bytes=300000-"]);
    expect(infos.some((m) => /resuming at byte 300000/.test(m))).toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it("deletes the download and fails clearly when the Hub's sha256 does not match", async () => {
    const dir = outDir();
    hub.mode.lieSha = true;
    await expect(downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast })).rejects.toThrow(
      new RegExp(`sha256 mismatch: the download's is ${hub.sha256(SPEC)}, the Hub says 0{64}; the partial file was deleted`),
    );
    expect(existsSync(join(dir, "stablelm-2-zephyr-1_6b-Q4_0.gguf"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });

  it("starts over when the server answers 200 to a Range request", async () => {
    const dir = outDir();
    // A part whose bytes are wrong: resuming onto it would fail the sha256; starting over must not.
    leavePart(dir, 5000);
    hub.mode.ignoreRange = true;
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast });
    expect(gets().map((q) => q.range)).toEqual(["bytes=5000-"]);
    expect(readFileSync(r.path).equals(model)).toBe(true);
  });

  it("starts over when the file's ETag changed since the part was written (If-Range)", async () => {
    const dir = outDir();
    leavePart(dir, 5000, { sha256: hub.sha256(SPEC), etag: '"v0"' });
    const infos: string[] = [];
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast, onInfo: (m) => infos.push(m) });
    expect(gets().map((q) => [q.range, q.ifRange])).toEqual([["bytes=5000-", '"v0"']]);
    expect(infos.some((m) => /copy changed \(If-Range\): starting over/.test(m))).toBe(true);
    expect(readFileSync(r.path).equals(model)).toBe(true);
  });

  it("drops a part recorded for another sha256 without asking for a range", async () => {
    const dir = outDir();
    leavePart(dir, 5000, { sha256: "a".repeat(64), etag: '"v1"' });
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast });
    expect(gets().map((q) => q.range)).toEqual([undefined]);
    expect(readFileSync(r.path).equals(model)).toBe(true);
  });

  it("finishes a whole part without a request when the size is known, and on a 416 when it is not", async () => {
    const dir = outDir();
    mkdirSync(dir);
    writeFileSync(join(dir, "stablelm-2-zephyr-1_6b-Q4_0.gguf.part"), model);
    const known = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast });
    expect(gets()).toEqual([]);
    expect(readFileSync(known.path).equals(model)).toBe(true);
    const dir2 = outDir();
    mkdirSync(dir2);
    writeFileSync(join(dir2, "stablelm-2-zephyr-1_6b-Q4_0.gguf.part"), model);
    // Behind the CDN redirect the HEAD sees no content-length either.
    Object.assign(hub.mode, { hideSize: true, viaCdn: true });
    const unknown = await downloadGGUF({ spec: SPEC, out: dir2, endpoint: hub.url, ...fast });
    expect(gets().map((q) => [q.server, q.range])).toEqual([["hub", `bytes=${model.length}-`], ["cdn", `bytes=${model.length}-`]]);
    expect(readFileSync(unknown.path).equals(model)).toBe(true);
  });

  it("follows the redirect to the CDN without the Authorization header", async () => {
    const dir = outDir();
    Object.assign(hub.mode, { viaCdn: true, drops: 1, dropAfter: 50_000, partFile: partOf(dir) });
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast });
    expect(readFileSync(r.path).equals(model)).toBe(true);
    const hubSide = hub.requests.filter((q) => q.server === "hub");
    const cdnSide = hub.requests.filter((q) => q.server === "cdn");
    expect(hubSide.map((q) => q.method)).toEqual(["HEAD", "GET", "GET"]);
    expect(hubSide.every((q) => q.auth === "Bearer hf_secret")).toBe(true);
    expect(cdnSide.map((q) => [q.method, q.range, q.auth])).toEqual([["GET", undefined, undefined], ["GET", "bytes=50000-", undefined]]);
  });

  it("reads the sha256 from paths-info when /resolve/ has no x-linked-etag", async () => {
    const dir = outDir();
    hub.mode.linkedHeaders = false;
    const infos: string[] = [];
    const r = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast, onInfo: (m) => infos.push(m) });
    expect(readFileSync(r.path).equals(model)).toBe(true);
    expect(hub.requests.map((q) => `${q.method} ${q.url.split("/").slice(0, 5).join("/")}`)).toContain(`POST /api/models/stabilityai/stablelm-2-zephyr-1_6b`);
    expect(infos[0]).toMatch(/from paths-info/);
    hub.requests.length = 0;
    hub.mode.lieSha = true;
    await expect(downloadGGUF({ spec: SPEC, out: outDir(), endpoint: hub.url, ...fast })).rejects.toThrow(/sha256 mismatch.*the Hub says 0{64}/);
  });

  it("skips a file already there with the right sha256, and replaces one that differs", async () => {
    const dir = outDir();
    const first = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast });
    hub.requests.length = 0;
    const again = await downloadGGUF({ spec: SPEC, out: dir, endpoint: hub.url, ...fast });
    expect(again.skipped).toBe(true);
    expect(gets()).toEqual([]);
    const wrong = Buffer.from(model);
    wrong[wrong.length - 1] ^= 1;
    writeFileSync(first.path, wrong);
    const fixed = await downloadGGUF({ spec: SPEC, out: first.path, endpoint: hub.url, ...fast });
    expect(fixed.skipped).toBe(false);
    expect(gets()).toHaveLength(1);
    expect(readFileSync(first.path).equals(model)).toBe(true);
  });

  it("refuses a file that is not a GGUF even when its sha256 matches", async () => {
    const dir = outDir();
    await expect(downloadGGUF({ spec: NOT_GGUF, out: dir, endpoint: hub.url, ...fast })).rejects.toThrow(/model\.gguf is not a GGUF file \(it does not start with "GGUF"\); the download was deleted/);
    expect(existsSync(join(dir, "model.gguf"))).toBe(false);
    expect(existsSync(join(dir, "model.gguf.part"))).toBe(false);
  });

  it("keeps a verified GGUF whose header edgelm cannot parse, and says so", async () => {
    const r = await downloadGGUF({ spec: ODD_GGUF, out: outDir(), endpoint: hub.url, ...fast });
    expect(existsSync(r.path)).toBe(true);
    expect(r.summary).toMatch(/^a GGUF edgelm cannot read \(.+\)$/);
    // No tensor table to list: no manifest, rather than one that vouches for nothing.
    expect(existsSync(manifestPathFor(r.path))).toBe(false);
  });

  it("names what is missing, and rejects malformed specs", async () => {
    await expect(downloadGGUF({ spec: "stabilityai/stablelm-2-zephyr-1_6b/nope.gguf", out: outDir(), endpoint: hub.url })).rejects.toThrow(/nope\.gguf at main: not found \(HTTP 404\)/);
    await expect(downloadGGUF({ spec: SPEC, out: outDir(), endpoint: hub.url, revision: "v9" })).rejects.toThrow(/at v9: not found/);
    expect(() => parseGGUFRef("stabilityai/model.gguf")).toThrow(/OWNER\/REPO\/PATH\.gguf/);
    expect(() => parseGGUFRef("a/b/../c.gguf")).toThrow(/not a plain path/);
    expect(() => parseGGUFRef("a/b/c.bin")).toThrow(/must name a \.gguf file/);
    expect(parseGGUFRef("a/b/sub/c.gguf")).toEqual({ repo: "a/b", path: "sub/c.gguf" });
  });
});

function edgelm(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Asynchronous on purpose: this process serves the fake Hub while the CLI runs.
  return new Promise((ok) => {
    const child = execFile(process.execPath, ["bin/edgelm.mjs", ...args], { timeout: 60_000, env: { ...process.env, HF_TOKEN: "", ...env } }, (err, stdout, stderr) =>
      ok({ code: err ? (child.exitCode ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("edgelm download --gguf (CLI)", () => {
  it("downloads through a dropped connection and the CDN, HF_TOKEN only to the Hub, and prints what it got", async () => {
    const out = join(outDir(), "zephyr-q4_0.gguf");
    Object.assign(hub.mode, { viaCdn: true, drops: 1, dropAfter: 1_000_000, partFile: `${out}.part` });
    const r = await edgelm(["download", "--gguf", SPEC, "--out", out, "--endpoint", hub.url], { HF_TOKEN: "hf_cli" });
    expect(r.stderr).toMatch(/connection dropped.*retry 1 of 5/);
    expect(r.stderr).toMatch(/^download: .*zephyr-q4_0\.gguf \(downloaded 10\.\d MiB, sha256 matches the Hub\): stablelm, "edgelm-synth-tiny \(random weights\)", 2 layers/m);
    expect(r.code).toBe(0);
    expect(readFileSync(out).equals(model)).toBe(true);
    expect(hub.requests.filter((q) => q.server === "hub").every((q) => q.auth === "Bearer hf_cli")).toBe(true);
    expect(hub.requests.filter((q) => q.server === "cdn").map((q) => q.auth)).toEqual([undefined, undefined]);
  });

  it("a lying checksum is one line on stderr, exit code 1, and no file left", async () => {
    const dir = outDir();
    hub.mode.lieSha = true;
    const r = await edgelm(["download", "--gguf", SPEC, "--out", dir, "--endpoint", hub.url]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^edgelm download: .*sha256 mismatch: .*the partial file was deleted/);
    expect(existsSync(dir) ? leftovers(dir).concat(existsSync(join(dir, "stablelm-2-zephyr-1_6b-Q4_0.gguf")) ? ["final"] : []) : []).toEqual([]);
  });

  it("--gguf with --model, or a spec without a path, is a usage error (exit 2)", async () => {
    const both = await edgelm(["download", "--gguf", SPEC, "--model", "stabilityai/stablelm-2-1_6b", "--endpoint", hub.url]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--gguf cannot be combined with --model/);
    const bad = await edgelm(["download", "--gguf", "stabilityai/x.gguf", "--endpoint", hub.url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^edgelm download: --gguf must be "OWNER\/REPO\/PATH\.gguf"/);
    expect(hub.requests).toEqual([]);
  });

  it("--help documents --gguf and its --out", async () => {
    const r = await edgelm(["download", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/edgelm download --gguf OWNER\/REPO\/PATH\.gguf \[--out DIR \| FILE\.gguf\]/);
    expect(r.stdout).toMatch(/--out DIR\|FILE .*default models\//);
  });
});
