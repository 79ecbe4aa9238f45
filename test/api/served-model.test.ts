/** The served-model builder both hosts call: engine choice, chat template, and what /health reports. */
import { describe, expect, it } from "vitest";
import { buildServedModel, chooseEngine, DEFAULT_ENGINE, ENGINE_NAMES, readModelFacts, type ChatChoice } from "../../src/api/index";
import { ValueType, type Metadata } from "../../src/gguf/index";
import type { Engine } from "../../src/model/index";
import { placeholderVocabGGUFMetadata } from "../../src/tokenizer/index";

const ZEPHYR_JINJA = "{% for m in messages %}<|user|>\n{{ m.content }}{{ eos_token }}<|assistant|>\n{% endfor %}";
const CHATML_JINJA = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";

function metadata(opts: { name?: string; template?: string } = {}): Metadata {
  const meta = placeholderVocabGGUFMetadata(300);
  if (opts.name !== undefined) meta.set("general.name", { type: ValueType.STRING, value: opts.name });
  if (opts.template !== undefined) meta.set("tokenizer.chat_template", { type: ValueType.STRING, value: opts.template });
  return meta;
}

const REAL = "stablelm-2-1_6b";
const SYNTH = "edgelm-synth-tiny (random weights)";

function facts(meta: Metadata, chat: Partial<ChatChoice> = {}) {
  const lines: string[] = [];
  const f = readModelFacts(meta, { hint: "pass --chat-template", log: (l) => lines.push(l), ...chat });
  return { ...f, lines };
}

describe("readModelFacts: the chat template", () => {
  it("an explicit override beats the GGUF's template", () => {
    const f = facts(metadata({ name: REAL, template: ZEPHYR_JINJA }), { override: "chatml" });
    expect(f.chatTemplate).toBe("chatml");
    expect(f.lines).toEqual([]);
  });

  it("uses the GGUF's template", () => {
    expect(facts(metadata({ name: REAL, template: CHATML_JINJA })).chatTemplate).toBe("chatml");
    expect(facts(metadata({ name: REAL, template: ZEPHYR_JINJA })).chatTemplate).toBe("zephyr");
  });

  it("gives a synthetic model without a template zephyr, quietly", () => {
    const f = facts(metadata({ name: SYNTH }));
    expect(f).toMatchObject({ chatTemplate: "zephyr", synthetic: true, generalName: SYNTH, lines: [] });
  });

  it("leaves a real model without a template without chat, and the warning says how to turn it on in this host", () => {
    const cli = facts(metadata({ name: REAL }));
    expect(cli.chatTemplate).toBeUndefined();
    expect(cli.synthetic).toBe(false);
    expect(cli.lines).toHaveLength(1);
    expect(cli.lines[0]).toMatch(/^warning: .*no tokenizer\.chat_template.*\/v1\/chat\/completions is off \(pass --chat-template\)$/);
    const worker = facts(metadata({ name: REAL }), { hint: "set CHAT_TEMPLATE" });
    expect(worker.lines[0]).toMatch(/\(set CHAT_TEMPLATE\)$/);
  });

  it("warns about a template it does not recognise, and serves no chat for a real model", () => {
    const f = facts(metadata({ name: REAL, template: "{{ messages | tojson }}" }));
    expect(f.chatTemplate).toBeUndefined();
    expect(f.lines).toHaveLength(1);
    expect(f.lines[0]).toMatch(/^warning: unrecognised chat template .*\/v1\/chat\/completions is off \(pass --chat-template\)$/);
  });

  it("warns about an unrecognised template on a synthetic model too, which still gets zephyr", () => {
    const f = facts(metadata({ name: SYNTH, template: "{{ messages | tojson }}" }));
    expect(f.chatTemplate).toBe("zephyr");
    expect(f.lines).toHaveLength(1);
    expect(f.lines[0]).toMatch(/^warning: unrecognised chat template .*zephyr/);
  });

  it("treats a model without general.name as real", () => {
    expect(facts(metadata()).synthetic).toBe(false);
  });

  it("builds the tokenizer from the GGUF vocabulary", () => {
    const f = facts(metadata({ name: REAL }));
    expect(f.tokenizer.decode(f.tokenizer.encode("hello"))).toBe("hello");
  });
});

describe("buildServedModel", () => {
  const engine = { name: "fake" } as Engine;

  it("takes the id from the file name unless given, and reports only the facts the host knows", () => {
    const f = readModelFacts(metadata({ name: SYNTH }), { hint: "pass --chat-template" });
    const node = buildServedModel(f, { engine, file: "tiny-f32.gguf" });
    expect(node).toMatchObject({ id: "tiny-f32", engine, tokenizer: f.tokenizer, chatTemplate: "zephyr" });
    expect(node.info).toEqual({ file: "tiny-f32.gguf", general_name: SYNTH, synthetic: true });
    expect(node.admit).toBeUndefined();
    expect(Math.abs(node.created - Date.now() / 1000)).toBeLessThan(5);

    const admit = () => {};
    const worker = buildServedModel(f, { engine, file: "models/tiny.gguf", id: "mine", source: "r2", loadMs: 12.6, admit });
    expect(worker.id).toBe("mine");
    expect(worker.info).toEqual({ file: "models/tiny.gguf", source: "r2", general_name: SYNTH, synthetic: true, load_ms: 13 });
    expect(worker.admit).toBe(admit);
  });

  it("reports a missing general.name as null", () => {
    const f = readModelFacts(metadata({ template: ZEPHYR_JINJA }), { hint: "" });
    expect(buildServedModel(f, { engine, file: "x.gguf" }).info).toMatchObject({ general_name: null, synthetic: false });
  });
});

describe("chooseEngine", () => {
  it("defaults to wasm", () => {
    expect(DEFAULT_ENGINE).toBe("wasm");
    expect(chooseEngine(undefined, ENGINE_NAMES)).toBe("wasm");
    expect(chooseEngine(undefined, ["ref", "wasm"])).toBe("wasm");
  });

  it("takes any engine the host can load", () => {
    expect(chooseEngine("ref", ["ref", "wasm"])).toBe("ref");
    expect(chooseEngine("sharded", ENGINE_NAMES)).toBe("sharded");
  });

  it("refuses an unknown name, or one this host cannot load, listing the valid names", () => {
    expect(() => chooseEngine("gpu", ENGINE_NAMES, "var ENGINE")).toThrow('var ENGINE must be one of ref, wasm, sharded, got "gpu"');
    expect(() => chooseEngine("sharded", ["ref", "wasm"], "--engine")).toThrow('--engine must be one of ref, wasm, got "sharded"');
  });
});
