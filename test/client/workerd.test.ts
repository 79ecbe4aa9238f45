/**
 * The same client in a browser-like runtime: bundled for the browser platform (so a Node import
 * would fail the build) and run in workerd, the Cloudflare Workers runtime, through Miniflare,
 * against the real server over a real socket. Scenarios live in workerEntry.ts.
 */
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RunningServer } from "../../src/node/server";
import { createClient } from "../../src/client/index";
import { passThrough, startFaultProxy, startTinyServer, type FaultProxy } from "./harness";

let server: RunningServer;
let proxy: FaultProxy;
let mf: Miniflare;

beforeAll(async () => {
  server = await startTinyServer();
  proxy = await startFaultProxy(server.url);
  const out = await build({
    entryPoints: [new URL("./worker-entry.ts", import.meta.url).pathname],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  mf = new Miniflare({
    modules: true,
    script: out.outputFiles[0].text,
    compatibilityDate: "2025-05-01",
    bindings: { SERVER: server.url, PROXY: proxy.url },
  });
  await mf.ready;
});
afterAll(async () => {
  await mf?.dispose();
  await proxy?.close();
  await server?.close();
});

const run = async (name: string) => {
  const res = await mf.dispatchFetch(`http://worker/${name}`);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body.crashed, String(body.crashed)).toBeUndefined();
  return body;
};

describe("edgelm/client inside workerd (no Node globals)", { timeout: 60_000 }, () => {
  it("runs without process, Buffer or require", async () => {
    expect(await run("globals")).toEqual({ process: "undefined", Buffer: "undefined", require: "undefined" });
  });

  it("streams a completion identical to the Node client's", async () => {
    const want = await createClient({ baseURL: server.url }).completion({ prompt: "Hello", max_tokens: 8, temperature: 0 });
    const got = await run("stream");
    expect(got).toMatchObject({ text: want.text, finishReason: "length", usage: { completion_tokens: 8 } });
    expect(got.chunks).toBeGreaterThan(8);
  });

  it("aborts mid-stream, and the server stops generating", async () => {
    expect(await run("abort")).toEqual({ error: "AbortError", isAbort: true, chunks: 1 });
    await vi.waitFor(() => expect(server.queue.running).toBe(false), { timeout: 20_000, interval: 20 });
  });

  it("detects a truncated stream", async () => {
    proxy.handle(passThrough({ onEvent: (i) => (i < 2 ? "send" : "end") }));
    expect(await run("truncated")).toEqual({ error: "TruncatedStreamError", truncated: true });
  });
});
