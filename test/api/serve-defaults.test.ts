/** `edgelm serve`'s defaults come from the served-model builder, the same as the Worker's. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../../src/node/server";
import { encodeChat } from "../../src/tokenizer/index";
import { synthGGUF } from "../../weights-tools/fixtures";

let server: RunningServer;
const lines: string[] = [];

beforeAll(async () => {
  // No engine and no chat template: what a user gets from `edgelm serve --model synth.gguf` (pinned to one thread, like every test but the threads tests).
  server = await startServer({ modelPath: await synthGGUF("tiny", "f32"), port: 0, modelId: "tiny", threads: 1, log: (l) => lines.push(l) });
  await server.ready;
});
afterAll(() => server?.close());

describe("startServer with nothing but a synthetic model", { timeout: 30_000 }, () => {
  it("serves /v1/chat/completions with the zephyr template, as the Worker does", async () => {
    const messages = [{ role: "user", content: "Hello there" }];
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages, max_tokens: 3, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.choices[0].message.role).toBe("assistant");
    const model = await server.ready;
    expect(body.usage.prompt_tokens).toBe(encodeChat(model.tokenizer, messages, { template: "zephyr" }).length);
    expect(await (await fetch(`${server.url}/health`)).json()).toMatchObject({ chat_template: "zephyr", synthetic: true });
    expect(lines.filter((l) => l.includes("warning"))).toEqual([]);
  });

  it("runs the wasm engine, the CLI's and the Worker's default", async () => {
    const health = await (await fetch(`${server.url}/health`)).json();
    expect(health.engine).toMatch(/^wasm\b/);
    expect((await server.ready).engine.name).toMatch(/^wasm\b/);
  });
});
