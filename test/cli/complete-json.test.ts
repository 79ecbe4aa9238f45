/**
 * `edgelm complete --json-schema FILE` / `--json-object` as a process, against a canned
 * OpenAI-compatible server: what the request carries, and what the CLI does with answers that are
 * valid, invalid, not JSON or cut off. The canned server stands in for a model because the point is
 * the CLI's local check, which must hold even against a server that ignores response_format.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { schemaName } from "../../src/cli/structured-output";
import { startCannedServer, type CannedServer } from "../helpers/canned-openai";
import { spawnEdgelm as edgelm } from "../helpers/cli";

const PERSON = {
  type: "object",
  properties: { name: { type: "string" }, age: { type: "integer", minimum: 0 } },
  required: ["name", "age"],
  additionalProperties: false,
};

let server: CannedServer;
let dir: string;
let schemaFile: string;

beforeAll(async () => {
  server = await startCannedServer();
  dir = await mkdtemp(join(tmpdir(), "edgelm-json-schema-"));
  schemaFile = join(dir, "person.schema.json");
  await writeFile(schemaFile, JSON.stringify(PERSON));
});
afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  server.seen.length = 0;
});

const prompt = (...extra: string[]) => ["complete", "--url", server.url, "--prompt", "Describe Ada as JSON", ...extra];

describe("edgelm complete --json-schema", { timeout: 60_000 }, () => {
  it("sends the schema as a strict json_schema response_format and prints the validated object, indented", async () => {
    // Split mid-token, as a model streams it: nothing may reach stdout before the whole object.
    server.answer({ pieces: ['{"na', 'me": "Ada", ', '"age"', ": 36}"], finish: "stop" });
    const r = edgelm(prompt("--json-schema", schemaFile, "--max-tokens", "64"));
    expect(await r.exit, r.stderr()).toBe(0);
    expect(r.stdout()).toBe(`${JSON.stringify({ name: "Ada", age: 36 }, null, 2)}\n`);
    expect(r.stderr()).toContain("finish: stop");
    expect(server.seen).toHaveLength(1);
    expect(server.seen[0].path).toBe("/v1/completions");
    expect(server.seen[0].body).toMatchObject({
      prompt: "Describe Ada as JSON",
      max_tokens: 64,
      response_format: { type: "json_schema", json_schema: { name: "person_schema", schema: PERSON, strict: true } },
    });
  });

  it("works in chat mode: each answer is checked and printed, the schema goes with every turn", async () => {
    server.answer({ pieces: ['{"name": "Bo",', ' "age": 7}'], finish: "stop" });
    const r = edgelm(["complete", "--url", server.url, "--chat", "--json-schema", schemaFile]);
    r.child.stdin.end("Who is Bo?\nAnd again?\n");
    expect(await r.exit, r.stderr()).toBe(0);
    const one = `${JSON.stringify({ name: "Bo", age: 7 }, null, 2)}\n`;
    expect(r.stdout()).toBe(one + one);
    expect(server.seen.map((s) => s.path)).toEqual(["/v1/chat/completions", "/v1/chat/completions"]);
    for (const s of server.seen) expect(s.body.response_format).toEqual({ type: "json_schema", json_schema: { name: "person_schema", schema: PERSON, strict: true } });
    // The raw answer text, not the re-indented object, is what the model said and goes back as history.
    expect((server.seen[1].body.messages as unknown[])[1]).toEqual({ role: "assistant", content: '{"name": "Bo", "age": 7}' });
  });

  it("an answer that violates the schema: says how, prints the raw text to stderr, nothing to stdout, exit 1", async () => {
    server.answer({ pieces: ['{"name": "Ada", "age": "thirty-six"}'], finish: "stop" });
    const r = edgelm(prompt("--json-schema", schemaFile));
    expect(await r.exit).toBe(1);
    expect(r.stdout()).toBe("");
    expect(r.stderr()).toContain(`does not match the schema in ${schemaFile}`);
    expect(r.stderr()).toContain("answer/age must be integer");
    expect(r.stderr()).toContain('{"name": "Ada", "age": "thirty-six"}');
  });

  it("an answer that is not JSON: says so with the raw text, exit 1", async () => {
    server.answer({ pieces: ["Ada is a ", "mathematician."], finish: "stop" });
    const r = edgelm(prompt("--json-schema", schemaFile));
    expect(await r.exit).toBe(1);
    expect(r.stdout()).toBe("");
    expect(r.stderr()).toContain("the answer is not valid JSON");
    expect(r.stderr()).toContain("Ada is a mathematician.");
  });

  it('finish_reason "length": says the output was cut off by max tokens and suggests --max-tokens', async () => {
    server.answer({ pieces: ['{"name": "Ada", "a'], finish: "length" });
    const r = edgelm(prompt("--json-schema", schemaFile, "--max-tokens", "5"));
    expect(await r.exit).toBe(1);
    expect(r.stdout()).toBe("");
    expect(r.stderr()).toContain('cut off by --max-tokens 5 (finish_reason "length")');
    expect(r.stderr()).toContain("give a larger --max-tokens");
    expect(r.stderr()).toContain('{"name": "Ada", "a');
    expect(r.stderr()).not.toContain("not valid JSON");
  });

  it("--json adds the parsed value (or null and the error) to the per-answer record", async () => {
    server.answer({ pieces: ['{"name": "Ada", "age": 36}'], finish: "stop" });
    const ok = edgelm(prompt("--json-schema", schemaFile, "--json"));
    expect(await ok.exit, ok.stderr()).toBe(0);
    expect(JSON.parse(ok.stdout())).toMatchObject({ text: '{"name": "Ada", "age": 36}', value: { name: "Ada", age: 36 }, outcome: "done", finish_reason: "stop" });
    server.answer({ pieces: ['{"name": "Ada"}'], finish: "stop" });
    const bad = edgelm(prompt("--json-schema", schemaFile, "--json"));
    expect(await bad.exit).toBe(1);
    const record = JSON.parse(bad.stdout());
    expect(record).toMatchObject({ value: null, outcome: "invalid" });
    expect(record.error).toContain("must have required property 'age'");
  });

  it("file problems are reported before anything is sent: unreadable, not JSON, not a schema ajv can compile", async () => {
    const missing = edgelm(prompt("--json-schema", join(dir, "nope.json")));
    expect(await missing.exit).toBe(1);
    expect(missing.stderr()).toContain("cannot read the --json-schema file");
    expect(missing.stderr()).toContain("nope.json");

    const notJson = join(dir, "broken.json");
    await writeFile(notJson, "{ type: object }");
    const r1 = edgelm(prompt("--json-schema", notJson));
    expect(await r1.exit).toBe(1);
    expect(r1.stderr()).toContain(`the --json-schema file ${notJson} is not JSON`);

    const notObject = join(dir, "list.json");
    await writeFile(notObject, "[1, 2]");
    const r2 = edgelm(prompt("--json-schema", notObject));
    expect(await r2.exit).toBe(1);
    expect(r2.stderr()).toContain("must hold a JSON Schema object, got an array");

    const badType = join(dir, "bad-type.json");
    await writeFile(badType, JSON.stringify({ type: "whole number" }));
    const r3 = edgelm(prompt("--json-schema", badType));
    expect(await r3.exit).toBe(1);
    expect(r3.stderr()).toContain(`ajv cannot compile the schema in ${badType}: schema is invalid`);

    const typo = join(dir, "typo.json");
    await writeFile(typo, JSON.stringify({ type: "object", propertes: { a: { type: "string" } } }));
    const r4 = edgelm(prompt("--json-schema", typo));
    expect(await r4.exit).toBe(1);
    expect(r4.stderr()).toContain('unknown keyword: "propertes"');

    for (const r of [missing, r1, r2, r3, r4]) expect(r.stderr()).not.toMatch(/\n\s+at /);
    expect(server.seen).toHaveLength(0);
  });

  it("a schema naming draft 2020-12 is compiled as one (prefixItems is checked)", async () => {
    const tuple = join(dir, "pair.json");
    await writeFile(tuple, JSON.stringify({ $schema: "https://json-schema.org/draft/2020-12/schema", type: "array", prefixItems: [{ type: "string" }, { type: "number" }], items: false }));
    server.answer({ pieces: ['["a", "b"]'], finish: "stop" });
    const r = edgelm(prompt("--json-schema", tuple));
    expect(await r.exit).toBe(1);
    expect(r.stderr()).toContain("answer/1 must be number");
    server.answer({ pieces: ['["a", 2]'], finish: "stop" });
    const ok = edgelm(prompt("--json-schema", tuple));
    expect(await ok.exit, ok.stderr()).toBe(0);
    expect(JSON.parse(ok.stdout())).toEqual(["a", 2]);
  });
});

describe("edgelm complete --json-object", { timeout: 60_000 }, () => {
  it("asks for json_object and prints the object; an answer that is JSON but not an object fails", async () => {
    server.answer({ pieces: ['{"ok":', " true}"], finish: "stop" });
    const r = edgelm(["complete", "--url", server.url, "--chat", "--json-object"]);
    r.child.stdin.end("Answer in JSON\n");
    expect(await r.exit, r.stderr()).toBe(0);
    expect(r.stdout()).toBe('{\n  "ok": true\n}\n');
    expect(server.seen[0].body.response_format).toEqual({ type: "json_object" });

    server.answer({ pieces: ["[1, 2]"], finish: "stop" });
    const bad = edgelm(prompt("--json-object"));
    expect(await bad.exit).toBe(1);
    expect(bad.stdout()).toBe("");
    expect(bad.stderr()).toContain("the answer is JSON but not an object (got an array)");
    expect(server.seen[1].body.response_format).toEqual({ type: "json_object" });
  });

  it("is refused together with --json-schema (usage error, exit 2)", async () => {
    const r = edgelm(prompt("--json-object", "--json-schema", schemaFile));
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toContain("give one of --json-schema FILE or --json-object");
    expect(server.seen).toHaveLength(0);
  });
});

describe("schemaName", () => {
  it("is the file's name without .json, with characters outside [A-Za-z0-9_-] replaced, at most 64 long", () => {
    expect(schemaName("/a/b/person.schema.json")).toBe("person_schema");
    expect(schemaName("my schema (v2)!.JSON")).toBe("my_schema__v2__");
    expect(schemaName("x".repeat(80) + ".json")).toBe("x".repeat(64));
    expect(schemaName("plain")).toBe("plain");
    expect(schemaName(".json")).toBe("schema");
  });
});
