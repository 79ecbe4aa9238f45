import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openGGUF } from "../../src/gguf/node";
import { metaString } from "../../src/gguf/metadata";
import { convertHF } from "../../weights-tools/convert";
import { downloadModel } from "../../weights-tools/download";
import { SafetensorsCheckpoint, writeSafetensors } from "../../weights-tools/safetensors";
import { writeSynthHF } from "../../weights-tools/synth";
import { tempDir } from "./helpers";

const root = tempDir("download");
const repoDir = join(root, "served");
const shardedDir = join(root, "served-sharded");
let server: Server;
let endpoint: string;
const requests: { url: string; range?: string; auth?: string }[] = [];

/** A tiny stand-in for huggingface.co: /<owner>/<name>/resolve/main/<file>, Range supported, 404 otherwise. */
function serve(req: IncomingMessage, res: ServerResponse): void {
  requests.push({ url: req.url ?? "", range: req.headers.range, auth: req.headers.authorization });
  const m = /^\/([^/]+)\/([^/]+)\/resolve\/main\/([^/]+)$/.exec(req.url ?? "");
  const repos: Record<string, string> = { "stablelm-2-1_6b": repoDir, "sharded-model": shardedDir };
  const base = m && m[1] === "stabilityai" ? repos[m[2]] : undefined;
  const path = m && base ? join(base, decodeURIComponent(m[3])) : "";
  if (!path || !existsSync(path)) {
    res.writeHead(404).end("not found");
    return;
  }
  const body = readFileSync(path);
  const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  if (r) {
    const start = Number(r[1]);
    if (start >= body.length) {
      res.writeHead(416).end();
      return;
    }
    res.writeHead(206, { "content-length": body.length - start, "content-range": `bytes ${start}-${body.length - 1}/${body.length}` }).end(body.subarray(start));
    return;
  }
  res.writeHead(200, { "content-length": body.length }).end(body);
}

beforeAll(async () => {
  await writeSynthHF("tiny", repoDir, 2, "bf16");
  writeFileSync(join(repoDir, "tokenizer_config.json"), JSON.stringify({ chat_template: "{{ messages[0].content }}" }));
  // A sharded variant: the same tensors split over two files plus an index.
  const ck = await SafetensorsCheckpoint.open(repoDir);
  const names = ck.names();
  const half = Math.ceil(names.length / 2);
  const shard = (list: string[]) => list.map((n) => ({ name: n, shape: ck.shape(n), rows: (s: number, c: number) => ck.readRows(n, s, c) }));
  mkdirSync(shardedDir);
  copyFileSync(join(repoDir, "config.json"), join(shardedDir, "config.json"));
  await writeSafetensors(join(shardedDir, "model-00001-of-00002.safetensors"), shard(names.slice(0, half)), "BF16");
  await writeSafetensors(join(shardedDir, "model-00002-of-00002.safetensors"), shard(names.slice(half)), "BF16");
  const weight_map = Object.fromEntries(names.map((n, i) => [n, i < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"]));
  writeFileSync(join(shardedDir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map }));
  await ck.close();

  server = createServer(serve);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((ok) => server?.close(ok));
  rmSync(root, { recursive: true, force: true });
});

describe("download", () => {
  it("fetches a checkpoint, resumes a partial file, skips present ones, and the result converts", async () => {
    const dir = join(root, "dl");
    const whole = readFileSync(join(repoDir, "model.safetensors"));
    // An interrupted earlier run left the first 1000 bytes.
    mkdirSync(dir);
    writeFileSync(join(dir, "model.safetensors.part"), whole.subarray(0, 1000));
    requests.length = 0;
    await downloadModel({ model: "stabilityai/stablelm-2-1_6b", dir, endpoint, token: "hf_test" });
    expect(readFileSync(join(dir, "model.safetensors")).equals(whole)).toBe(true);
    expect(existsSync(join(dir, "model.safetensors.part"))).toBe(false);
    expect(readFileSync(join(dir, "config.json"), "utf8")).toBe(readFileSync(join(repoDir, "config.json"), "utf8"));
    expect(existsSync(join(dir, "tokenizer_config.json"))).toBe(true);
    expect(existsSync(join(dir, "tokenizer.json"))).toBe(false); // 404 on an optional file is fine
    const st = requests.find((r) => r.url.endsWith("/model.safetensors"));
    expect(st?.range).toBe("bytes=1000-");
    expect(requests.every((r) => r.auth === "Bearer hf_test")).toBe(true);
    expect(requests.every((r) => r.url.startsWith("/stabilityai/stablelm-2-1_6b/resolve/main/"))).toBe(true);

    // A second run fetches nothing.
    const mtime = statSync(join(dir, "model.safetensors")).mtimeMs;
    requests.length = 0;
    await downloadModel({ model: "stabilityai/stablelm-2-1_6b", dir, endpoint });
    expect(requests.filter((r) => r.url.endsWith(".safetensors") || r.url.endsWith("config.json"))).toEqual([]);
    expect(statSync(join(dir, "model.safetensors")).mtimeMs).toBe(mtime);

    const out = join(root, "dl.gguf");
    await convertHF(dir, out, "q4_0", { onWarning: () => {} });
    const g = await openGGUF(out);
    expect(metaString(g.metadata, "tokenizer.chat_template")).toBe("{{ messages[0].content }}");
    await g.close();
  });

  it("follows model.safetensors.index.json to the shards", async () => {
    const dir = join(root, "dl-sharded");
    await downloadModel({ model: "stabilityai/sharded-model", dir, endpoint });
    for (const f of ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) expect(existsSync(join(dir, f)), f).toBe(true);
    expect(existsSync(join(dir, "model.safetensors"))).toBe(false);
  });

  it("works from the CLI (download + convert), with --endpoint pointing at the local server", async () => {
    const dir = join(root, "dl-cli");
    const out = join(root, "dl-cli.gguf");
    // Asynchronous on purpose: this process must keep serving while the CLI runs.
    const r = await new Promise<{ code: number | null; stderr: string }>((ok) => {
      const child = execFile(process.execPath, ["bin/edgelm.mjs", "download", "--model", "stabilityai/stablelm-2-1_6b", "--dir", dir, "--type", "f16", "--out", out, "--endpoint", endpoint], { timeout: 60_000 }, (err, _stdout, stderr) => ok({ code: err ? (child.exitCode ?? 1) : 0, stderr }));
    });
    expect(r.stderr).toMatch(/^convert: wrote .*dl-cli\.gguf \(f16/m);
    expect(r.code).toBe(0);
    const g = await openGGUF(out);
    expect(metaString(g.metadata, "general.name")).toBe("stablelm-2-1_6b");
    await g.close();
  });

  it("fails clearly on a missing repo and on a bad repo name", async () => {
    await expect(downloadModel({ model: "stabilityai/no-such-model", dir: join(root, "none"), endpoint })).rejects.toThrow(/config\.json: 404/);
    await expect(downloadModel({ model: "../etc", dir: join(root, "none2"), endpoint })).rejects.toThrow(/owner\/name/);
  });
});
