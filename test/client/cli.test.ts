/**
 * `edgelm complete` as a user runs it: a real process against the real server (through the
 * counting proxy where the test needs to see the requests), streamed output, chat history over
 * piped stdin, and Ctrl-C (SIGINT) in the middle of a generation.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { RunningServer } from "../../src/node/server";
import { createClient } from "../../src/client/index";
import { spawnEdgelm as edgelm } from "../helpers/cli";
import { passThrough, startFaultProxy, startTinyServer, type FaultProxy } from "./harness";

let server: RunningServer;
let proxy: FaultProxy;

beforeAll(async () => {
  server = await startTinyServer();
  proxy = await startFaultProxy(server.url);
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});
beforeEach(() => {
  proxy.seen.length = 0;
  proxy.handle(passThrough());
});

const engineFreed = () => vi.waitFor(() => expect(server.queue.running).toBe(false), { timeout: 20_000, interval: 20 });

describe("edgelm complete", { timeout: 60_000 }, () => {
  it("--help documents every option", async () => {
    const r = edgelm(["complete", "--help"]);
    expect(await r.exit).toBe(0);
    for (const flag of ["--url", "--api-key", "--prompt", "--chat", "--system", "--max-tokens", "--temperature", "--top-p", "--top-k", "--seed", "--stop", "--model", "--max-retries", "--timeout", "--json", "--json-schema", "--json-object", "EDGELM_API_KEY"]) {
      expect(r.stdout(), flag).toContain(flag);
    }
    const bad = edgelm(["complete", "--url", server.url]);
    expect(await bad.exit).toBe(2);
    expect(bad.stderr()).toContain("exactly one of --prompt TEXT or --chat");
  });

  it("--prompt streams the text to stdout and the summary (route, usage, tokens/s) to stderr", async () => {
    const want = await createClient({ baseURL: server.url }).completion({ prompt: "Hello", max_tokens: 8, temperature: 0, seed: 3 });
    proxy.handle(passThrough({ headers: { "x-edgelm-route": "edge" } }));
    const r = edgelm(["complete", "--url", proxy.url, "--prompt", "Hello", "--max-tokens", "8", "--temperature", "0", "--seed", "3", "--stop", "zzzz-never"], { EDGELM_API_KEY: "sk-env" });
    expect(await r.exit, r.stderr()).toBe(0);
    expect(r.stdout()).toBe(`${want.text}\n`);
    expect(r.stderr()).toMatch(/finish: length · route: edge · tokens: 1 prompt \+ 8 completion · first token \d+ ms · 8 in [\d.]+ s = [\d.]+ tokens\/s/);
    const sent = JSON.parse(proxy.seen[0].body);
    expect(sent).toMatchObject({ prompt: "Hello", max_tokens: 8, temperature: 0, seed: 3, stop: ["zzzz-never"], stream: true });
    expect(proxy.seen[0].headers.authorization).toBe("Bearer sk-env");
  });

  it("--chat with piped stdin holds a two-turn conversation, sending the history each turn", async () => {
    const r = edgelm(["complete", "--url", proxy.url, "--chat", "--system", "Be brief.", "--max-tokens", "4", "--temperature", "0", "--json", "--api-key", "sk-flag"]);
    r.child.stdin.end("Hello there\nAnd then?\n");
    expect(await r.exit, r.stderr()).toBe(0);
    const turns = r.stdout().trim().split("\n").map((l) => JSON.parse(l));
    expect(turns).toHaveLength(2);
    const bodies = proxy.seen.map((s) => JSON.parse(s.body));
    expect(bodies[0].messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hello there" },
    ]);
    expect(bodies[1].messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hello there" },
      { role: "assistant", content: turns[0].text },
      { role: "user", content: "And then?" },
    ]);
    expect(turns[1].usage.prompt_tokens).toBeGreaterThan(turns[0].usage.prompt_tokens + turns[0].usage.completion_tokens);
    expect(turns.map((t) => t.finish_reason)).toEqual(["length", "length"]);
    expect(proxy.seen[1].headers.authorization).toBe("Bearer sk-flag");
  });

  it("Ctrl-C during a generation stops it cleanly: note, summary, exit 130, and the server stops too", async () => {
    const r = edgelm(["complete", "--url", server.url, "--prompt", "x", "--max-tokens", "4000", "--temperature", "0"]);
    await vi.waitFor(() => expect(r.stdout().length).toBeGreaterThan(0), { timeout: 30_000, interval: 20 });
    r.child.kill("SIGINT");
    expect(await r.exit).toBe(130);
    expect(r.stderr()).toContain("stopped by Ctrl-C");
    expect(r.stderr()).toContain("finish: none");
    expect(r.stderr()).not.toMatch(/\n\s+at /); // no stack trace
    await engineFreed();
  });

  it("Ctrl-C in a chat stops the answer and returns to the prompt; the conversation goes on", async () => {
    const r = edgelm(["complete", "--url", proxy.url, "--chat", "--max-tokens", "4000", "--temperature", "0"]);
    r.child.stdin.write("Tell me everything\n");
    await vi.waitFor(() => expect(r.stdout().length).toBeGreaterThan(0), { timeout: 30_000, interval: 20 });
    r.child.kill("SIGINT");
    await vi.waitFor(() => expect(r.stderr()).toContain("stopped by Ctrl-C"), { timeout: 20_000, interval: 20 });
    await engineFreed();
    r.child.stdin.end("/exit\n");
    expect(await r.exit, r.stderr()).toBe(0);
    expect(proxy.attempts).toBe(1);
  });
});
