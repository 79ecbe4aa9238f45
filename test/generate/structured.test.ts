/**
 * The constraint engine against independent references: ajv validates what the matcher accepts and
 * what a random-weight model writes under it; JavaScript's RegExp judges the pattern subset.
 */
import Ajv from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileSchema, createConstraint, generate, SchemaError } from "../../src/generate/index";
import { advance, canEnd, initial, step, type S } from "../../src/generate/json-matcher";
import { compileRegex, regexAccepts, regexStep, RegexError } from "../../src/generate/json-regex";
import { seededRandom } from "../../src/util/random";
import type { ServedModel } from "../../src/api/deps";
import { synthGGUF } from "../../weights-tools/fixtures";
import { loadServedModel } from "../../src/node/server";
import { sampleUnderSchema } from "./sample-schema";
import { SCHEMAS } from "./schemas";

const ajv = new Ajv({ strict: false });
const enc = new TextEncoder();
const dec = new TextDecoder();

function accepts(schema: object, text: string): { alive: boolean; end: boolean } {
  const st = advance(initial(compileSchema(schema)), enc.encode(text));
  return { alive: st.length > 0, end: st.some(canEnd) };
}

/** A random walk over the bytes the matcher allows, ending when it may (with some chance) or must. */
function randomDocument(schema: object, random: () => number, maxBytes = 400): string | undefined {
  let stacks: S[] = initial(compileSchema(schema));
  const out: number[] = [];
  while (out.length < maxBytes) {
    if (stacks.every((s) => s === null)) break;
    if (stacks.some(canEnd) && random() < 0.2) break;
    const options: number[] = [];
    for (let b = 0; b < 256; b++) if (stacks.some((s) => s !== null && step(s, b).length)) options.push(b);
    if (!options.length) throw new Error(`dead end after ${JSON.stringify(dec.decode(new Uint8Array(out)))}`);
    // Favour structure over long runs of string bytes, so documents finish.
    const pick = options.includes(0x22) && random() < 0.3 ? 0x22 : options[Math.floor(random() * options.length)];
    out.push(pick);
    stacks = advance(stacks, new Uint8Array([pick]));
  }
  return stacks.some(canEnd) ? dec.decode(new Uint8Array(out)) : undefined;
}

describe("the matcher accepts exactly what the schema allows", () => {
  it("accepts valid documents in declared order, with the whitespace it allows", () => {
    const s = SCHEMAS.flat;
    expect(accepts(s, '{"name": "Bob", "age": 42}')).toEqual({ alive: true, end: true });
    expect(accepts(s, '{\n  "name": "é漢字",\n  "age": 7,\n  "active": false,\n  "note": null\n}').end).toBe(true);
    expect(accepts(s, '{"name":"x","age":0}').end).toBe(true);
  });

  it("rejects out-of-range numbers, missing required keys, unknown keys, long strings and bad whitespace", () => {
    const s = SCHEMAS.flat;
    expect(accepts(s, '{"name": "Bob", "age": 151').alive).toBe(false);
    expect(accepts(s, '{"age": 4}').alive).toBe(false);
    expect(accepts(s, '{"name": "Bob", "age": 4, "zzz": 1}').alive).toBe(false);
    expect(accepts(s, '{"name": "0123456789abc"').alive).toBe(false);
    expect(accepts(s, '{  "name"').alive).toBe(false);
    expect(accepts(s, '{"name": "Bob"}').alive).toBe(false);
    expect(accepts(s, '{"name": "a\u0001"').alive).toBe(false);
    // Declared order: age cannot come before name.
    expect(accepts(s, '{"age": 4, "name": "x"}').alive).toBe(false);
  });

  it("checks UTF-8 byte by byte: overlong forms, surrogates and stray continuation bytes are refused", () => {
    const g = initial(compileSchema({ type: "string", maxLength: 5 }));
    const after = (bytes: number[]) => advance(g, new Uint8Array([0x22, ...bytes])).length > 0;
    expect(after([0xc3, 0xa9])).toBe(true); // é
    expect(after([0xc0, 0x80])).toBe(false); // overlong NUL
    expect(after([0xe0, 0x80])).toBe(false); // overlong three-byte
    expect(after([0xed, 0xa0])).toBe(false); // a surrogate half
    expect(after([0x80])).toBe(false);
    expect(after([0xf4, 0x90])).toBe(false); // above U+10FFFF
  });

  it("counts characters, not bytes, and an escape as one character", () => {
    const s = { type: "string", minLength: 2, maxLength: 3 };
    expect(accepts(s, '"漢字"').end).toBe(true);
    expect(accepts(s, '"a"').end).toBe(false);
    expect(accepts(s, '"a\\nb"').end).toBe(true);
    expect(accepts(s, '"\\u00e9\\u00e9\\u00e9"').end).toBe(true);
    expect(accepts(s, '"abcd').alive).toBe(false);
  });

  it("keeps a bounded number completable: no digit that leads only outside the range", () => {
    const s = { type: "integer", minimum: 10, maximum: 30 };
    expect(accepts(s, "2").alive).toBe(true);
    expect(accepts(s, "4").alive).toBe(false); // 4 and 40..49 are all outside
    expect(accepts(s, "-").alive).toBe(false);
    expect(accepts(s, "25").end).toBe(true);
    expect(accepts(s, "2").end).toBe(false);
    const f = { type: "number", minimum: -1.5, maximum: 2.25 };
    expect(accepts(f, "2.2").end).toBe(true);
    expect(accepts(f, "2.3").alive).toBe(false);
    expect(accepts(f, "-1.4").end).toBe(true);
    expect(accepts(f, "1e").alive).toBe(false); // no exponent under a bound
  });

  it.each(Object.keys(SCHEMAS))("%s: every document a random walk finishes is valid for ajv", (name) => {
    const validate = ajv.compile(SCHEMAS[name]);
    const random = seededRandom(7);
    let finished = 0;
    for (let i = 0; i < 40; i++) {
      const doc = randomDocument(SCHEMAS[name], random);
      if (doc === undefined) continue;
      finished++;
      const value = JSON.parse(doc);
      expect(validate(value), `${doc}\n${JSON.stringify(validate.errors)}`).toBe(true);
    }
    expect(finished).toBeGreaterThan(20);
  });
});

describe("the schema subset", () => {
  const error = (schema: object): SchemaError => {
    try {
      compileSchema(schema);
    } catch (err) {
      if (err instanceof SchemaError) return err;
      throw err;
    }
    throw new Error("expected a SchemaError");
  };

  it("names the path of an unsupported keyword", () => {
    expect(error({ type: "object", properties: { a: { type: "string", format: "email" } } }).path).toBe("#/properties/a/format");
    expect(error({ type: "array", items: { oneOf: [] } }).path).toBe("#/items/oneOf");
    expect(error({ type: "object", additionalProperties: true }).path).toBe("#/additionalProperties");
    expect(error({ type: "string", pattern: "(?=a)b" }).path).toBe("#/pattern");
    expect(error({ type: "integer", minimum: 3, maximum: 2 }).path).toBe("#/minimum");
    expect(error({ $ref: "#/$defs/missing" }).path).toBe("#/$ref");
    expect(error({ type: "string", maxLength: 2, minimum: 1 }).path).toBe("#/minimum");
    // Malformed, not just unsupported.
    expect(error({ type: "object", properties: 5 }).path).toBe("#/properties");
    expect(error({ type: "strng" }).path).toBe("#/type");
    expect(error({ type: "array", items: { type: "string", maxLength: -1 } }).path).toBe("#/items/maxLength");
    expect(error({ type: "object", properties: { a: { type: "string" } }, required: ["b"] }).path).toBe("#/required");
    expect(error({ enum: [] }).path).toBe("#/enum");
  });

  it("accepts annotations and ignores them", () => {
    expect(() => compileSchema({ $schema: "https://json-schema.org/draft/2020-12/schema", $id: "x", title: "t", description: "d", default: 1, examples: [1], $comment: "c", type: "integer" })).not.toThrow();
  });

  it("unrolls recursion to the stated depth and then stops", () => {
    const s = SCHEMAS.recursive;
    expect(accepts(s, '{"label": "a", "children": [{"label": "b", "children": [{"label": "c"}]}]}').end).toBe(true);
    // Three expansions of the node: a fourth level of children is not admitted.
    expect(accepts(s, '{"label": "a", "children": [{"label": "b", "children": [{"label": "c", "children": [{').alive).toBe(false);
  });

  it("caches compiled schemas by their JSON text", () => {
    expect(compileSchema({ type: "object", properties: { z: { type: "boolean" } } })).toBe(compileSchema({ type: "object", properties: { z: { type: "boolean" } } }));
  });
});

describe("the pattern subset agrees with RegExp", () => {
  const patterns = ["^[a-z]{2,4}-\\d+$", "(cat|dog)s?", "^a.c$", "^[^0-9]+$", "^\\w+\\s\\w+$", "x*y+z?", "^(ab|cd){2}$", "^[\\u00e0-\\u00ff]+$", "^\\.\\*$", "é+"];
  const inputs = ["", "ab-12", "abcde-1", "cats", "dog", "a-c", "abc", "a\nc", "hello world", "xyyz", "abcd", "abab", "àé", "éé", ".*", "zz", "1", "a b", "dogsdogs", "yz"];
  it.each(patterns)("/%s/", (p) => {
    const re = compileRegex(p);
    const js = new RegExp(p, "u");
    for (const s of inputs) {
      let set: readonly number[] = re.start;
      for (const ch of s) set = set.length ? regexStep(re, set, ch.codePointAt(0)!) : set;
      expect(set.length > 0 && regexAccepts(re, set), `${p} on ${JSON.stringify(s)}`).toBe(js.test(s));
    }
  });

  it("refuses backreferences, lookaround and word boundaries", () => {
    for (const p of ["(a)\\1", "(?=a)", "(?!a)", "(?<=a)b", "\\bword", "\\p{L}"]) expect(() => compileRegex(p), p).toThrow(RegexError);
  });
});

describe("a random-weight model sampling at temperature 1 under each schema", () => {
  let model: ServedModel;
  beforeAll(async () => {
    // The wasm engine on one thread: twice the reference engine's speed on this vocabulary-bound model.
    model = await loadServedModel(await synthGGUF("tiny", "f32"), { modelId: "tiny", engine: "wasm", threads: 1, maxBatch: 1 });
  }, 120_000);
  afterAll(() => model?.engine.close?.());

  const SEEDS = Number(process.env.EDGELM_SCHEMA_SEEDS ?? 20);

  it.each(Object.keys(SCHEMAS))(
    "%s: stop outputs validate, length outputs are prefixes, at least 95% stop",
    async (name) => {
      const validate = ajv.compile(SCHEMAS[name]);
      const prompt = model.tokenizer.encode(`Answer in JSON (${name}):`);
      let stops = 0;
      for (let seed = 0; seed < SEEDS; seed++) {
        const { text, finish } = await sampleUnderSchema(model, SCHEMAS[name], prompt, seed);
        if (finish === "stop") {
          stops++;
          expect(validate(JSON.parse(text)), `seed ${seed}: ${text}\n${JSON.stringify(validate.errors)}`).toBe(true);
        } else {
          expect(advance(initial(compileSchema(SCHEMAS[name])), enc.encode(text)).length, `seed ${seed}: ${text}`).toBeGreaterThan(0);
        }
      }
      expect(stops / SEEDS).toBeGreaterThanOrEqual(0.95);
    },
    600_000,
  );

  it("max_tokens cuts a value short: finish_reason length and a prefix the matcher accepts", async () => {
    const constraint = createConstraint({ text: { kind: "json_schema", schema: SCHEMAS.nested10 } }, model.tokenizer);
    let text = "";
    let finish = "";
    for await (const ev of generate(model.engine, model.tokenizer, { prompt: model.tokenizer.encode("x"), maxTokens: 5, seed: 3, sampling: { temperature: 1 }, constraint })) {
      if (ev.type === "token") text += ev.text;
      else if (ev.type === "done") finish = ev.finishReason;
    }
    expect(finish).toBe("length");
    expect(() => JSON.parse(text)).toThrow();
    expect(advance(initial(compileSchema(SCHEMAS.nested10)), enc.encode(text)).length).toBeGreaterThan(0);
  });

  it("JSON mode writes a JSON object", async () => {
    for (let seed = 0; seed < 5; seed++) {
      const constraint = createConstraint({ text: { kind: "json_object" } }, model.tokenizer);
      let text = "";
      let finish = "";
      for await (const ev of generate(model.engine, model.tokenizer, { prompt: model.tokenizer.encode("{"), maxTokens: 256, seed, sampling: { temperature: 1 }, constraint })) {
        if (ev.type === "token") text += ev.text;
        else if (ev.type === "done") finish = ev.finishReason;
      }
      if (finish === "stop") expect(typeof JSON.parse(text)).toBe("object");
      else expect(text.startsWith("{")).toBe(true);
    }
  });

  it("logprobs describe the masked distribution: every reported alternative fits", async () => {
    const constraint = createConstraint({ text: { kind: "json_schema", schema: SCHEMAS.enums } }, model.tokenizer);
    let text = "";
    for await (const ev of generate(model.engine, model.tokenizer, { prompt: [1, 2, 3], maxTokens: 40, seed: 1, sampling: { temperature: 1 }, constraint, logprobs: 5 })) {
      if (ev.type !== "token") continue;
      for (const alt of ev.topLogprobs ?? []) {
        if (alt.logprob === -Infinity) continue;
        const bytes = model.tokenizer.tokenBytes(alt.id);
        const fits = alt.id === model.tokenizer.eosId || (bytes !== undefined && advance(initial(compileSchema(SCHEMAS.enums)), enc.encode(text + dec.decode(bytes))).length > 0);
        expect(fits, `${JSON.stringify(text)} + ${JSON.stringify(alt.token)}`).toBe(true);
      }
      text += ev.text;
    }
  });
});
