import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openGGUF, type GGUFFile } from "../../src/gguf/node";
import { metaArray, metaBool, metaNumber, metaString } from "../../src/gguf/metadata";
import { dequantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { convertHF } from "../../weights-tools/convert";
import { SafetensorsCheckpoint } from "../../weights-tools/safetensors";
import { presetConfig, writeSynthGGUF, writeSynthHF } from "../../weights-tools/synth";
import { customHF, tempDir } from "./helpers";

const root = tempDir("convert");
afterAll(() => rmSync(root, { recursive: true, force: true }));

const H = 64;
const I = 160;
const V = 100352;

/** tiny's GGUF ← HF names and ggml dims, written out independently of the converter's own table. */
function tinyLayout(): [gguf: string, hf: string, dims: number[]][] {
  const t: [string, string, number[]][] = [["token_embd.weight", "model.embed_tokens.weight", [H, V]]];
  for (let i = 0; i < 2; i++) {
    const p = `model.layers.${i}`;
    t.push(
      [`blk.${i}.attn_norm.weight`, `${p}.input_layernorm.weight`, [H]],
      [`blk.${i}.attn_norm.bias`, `${p}.input_layernorm.bias`, [H]],
      [`blk.${i}.attn_q.weight`, `${p}.self_attn.q_proj.weight`, [H, H]],
      [`blk.${i}.attn_q.bias`, `${p}.self_attn.q_proj.bias`, [H]],
      [`blk.${i}.attn_k.weight`, `${p}.self_attn.k_proj.weight`, [H, H]],
      [`blk.${i}.attn_k.bias`, `${p}.self_attn.k_proj.bias`, [H]],
      [`blk.${i}.attn_v.weight`, `${p}.self_attn.v_proj.weight`, [H, H]],
      [`blk.${i}.attn_v.bias`, `${p}.self_attn.v_proj.bias`, [H]],
      [`blk.${i}.attn_output.weight`, `${p}.self_attn.o_proj.weight`, [H, H]],
      [`blk.${i}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`, [H]],
      [`blk.${i}.ffn_norm.bias`, `${p}.post_attention_layernorm.bias`, [H]],
      [`blk.${i}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`, [H, I]],
      [`blk.${i}.ffn_up.weight`, `${p}.mlp.up_proj.weight`, [H, I]],
      [`blk.${i}.ffn_down.weight`, `${p}.mlp.down_proj.weight`, [I, H]],
    );
  }
  t.push(["output_norm.weight", "model.norm.weight", [H]], ["output_norm.bias", "model.norm.bias", [H]], ["output.weight", "lm_head.weight", [H, V]]);
  return t;
}

const TYPES = { f32: TensorType.F32, f16: TensorType.F16, bf16: TensorType.BF16, q8_0: TensorType.Q8_0, q4_0: TensorType.Q4_0 } as const;
const FILE_TYPE = { f32: 0, f16: 1, bf16: 32, q8_0: 7, q4_0: 2 } as const;

/**
 * Largest error allowed for each element: none where the type holds bf16 values exactly; f16
 * rounding (half an ulp, 2^-25 for subnormals); half a step for q8_0 (amax/127); one whole step
 * for q4_0 (amax/8: the clamp to 15 costs a step at the far end); plus the f16 rounding of the
 * block scale.
 */
function bounds(type: keyof typeof TYPES, x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  if (type === "f32" || type === "bf16") return out; // synthetic values are bf16-exact
  if (type === "f16") {
    for (let i = 0; i < x.length; i++) out[i] = Math.abs(x[i]) * 2 ** -11 + 2 ** -25;
    return out;
  }
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[j]));
    out.fill(type === "q8_0" ? (amax / 127) * 0.55 + amax * 2 ** -11 : (amax / 8) * 1.01 + amax * 2 ** -10, b, b + 32);
  }
  return out;
}

describe("convert a synth tiny HF folder", () => {
  const hf = join(root, "tiny-hf-f32");
  const hfBF16 = join(root, "tiny-hf-bf16");
  const outputs = new Map<string, string>();
  let ckpt: SafetensorsCheckpoint;
  beforeAll(async () => {
    await writeSynthHF("tiny", hf, 0, "f32");
    await writeSynthHF("tiny", hfBF16, 0, "bf16");
    ckpt = await SafetensorsCheckpoint.open(hf);
  });
  afterAll(() => ckpt.close());

  it.each(Object.keys(TYPES) as (keyof typeof TYPES)[])("to %s", async (type) => {
    const out = join(root, `tiny-${type}.gguf`);
    outputs.set(type, out);
    const warnings: string[] = [];
    const r = await convertHF(hf, out, type, { onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([]);
    const g: GGUFFile = await openGGUF(out);
    try {
      const m = g.metadata;
      expect(metaString(m, "general.architecture")).toBe("stablelm");
      expect(metaString(m, "general.name")).toBe("edgelm-synth-tiny (random weights)");
      expect(metaNumber(m, "general.file_type")).toBe(FILE_TYPE[type]);
      expect(metaNumber(m, "general.quantization_version")).toBe(type.startsWith("q") ? 2 : undefined);
      expect(metaNumber(m, "stablelm.context_length")).toBe(4096);
      expect(metaNumber(m, "stablelm.embedding_length")).toBe(H);
      expect(metaNumber(m, "stablelm.block_count")).toBe(2);
      expect(metaNumber(m, "stablelm.feed_forward_length")).toBe(I);
      expect(metaNumber(m, "stablelm.rope.dimension_count")).toBe(4);
      expect(metaNumber(m, "stablelm.attention.head_count")).toBe(4);
      expect(metaNumber(m, "stablelm.attention.head_count_kv")).toBe(4);
      expect(metaBool(m, "stablelm.use_parallel_residual")).toBe(false);
      expect(metaNumber(m, "stablelm.attention.layer_norm_epsilon")).toBeCloseTo(1e-5, 10);
      expect(m.has("stablelm.rope.freq_base")).toBe(false);
      // vocab 100352 and no tokenizer.json: the built-in Arcade100k vocabulary.
      expect(metaString(m, "tokenizer.ggml.model")).toBe("gpt2");
      expect(metaString(m, "tokenizer.ggml.pre")).toBe("stablelm2");
      expect(metaArray(m, "tokenizer.ggml.tokens")).toHaveLength(V);
      expect(metaNumber(m, "tokenizer.ggml.eos_token_id")).toBe(100257);

      const layout = tinyLayout();
      expect(g.tensors.map((t) => t.name).sort()).toEqual(layout.map(([n]) => n).sort());
      expect(r.tensors).toBe(layout.length);
      for (const [name, hfName, dims] of layout) {
        const info = g.tensor(name);
        expect(info.dims, name).toEqual(dims);
        expect(info.type, name).toBe(dims.length === 1 ? TensorType.F32 : TYPES[type]);
        const rows = dims.length === 1 ? 1 : dims[1];
        const src = await ckpt.readRows(hfName, 0, rows);
        const got = dequantize(info.type, await g.readTensor(info), info.count);
        const limit = bounds(dims.length === 1 ? "f32" : type, src);
        let worst = 0;
        for (let i = 0; i < src.length; i++) {
          const err = Math.abs(got[i] - src[i]);
          if (!(err <= limit[i])) throw new Error(`${name}[${i}]: ${got[i]} vs source ${src[i]} (allowed ±${limit[i]})`);
          worst = Math.max(worst, err);
        }
        // Lossy types must actually lose something on random data: a converter that wrote F32 under a Q4_0 label would not.
        if (type === "f32" || type === "bf16" || dims.length === 1) expect(worst, name).toBe(0);
        else if (type !== "f16") expect(worst, name).toBeGreaterThan(0); // bf16 values are mostly f16-exact
      }
    } finally {
      await g.close();
    }
  });

  // The synthetic values are bf16-exact, so a bf16 checkpoint must convert to the very same bytes.
  it.each(["f32", "q4_0"] as const)("from bf16 safetensors to %s, identical to the f32 checkpoint's", async (type) => {
    const out = join(root, `tiny-from-bf16-${type}.gguf`);
    await convertHF(hfBF16, out, type, { onWarning: () => {} });
    const ref = outputs.get(type);
    expect(ref, "runs after the f32 conversions").toBeDefined();
    expect(readFileSync(out).equals(readFileSync(ref!))).toBe(true);
  });

  it("equals synth's own GGUF (q4_0)", async () => {
    const a = join(root, "tiny-synth-q4_0.gguf");
    await writeSynthGGUF("tiny", a, "q4_0", 0);
    expect(readFileSync(a).equals(readFileSync(outputs.get("q4_0")!))).toBe(true);
  });
});

describe("synth GGUF equals convert(synth HF)", () => {
  it.each([["tiny-parallel", "q8_0", "bf16"]] as const)("%s %s via %s safetensors", async (preset, type, hfDtype) => {
    const hf = join(root, `eq-${preset}-${hfDtype}`);
    await writeSynthHF(preset, hf, 3, hfDtype);
    const a = join(root, `eq-${preset}-${type}-${hfDtype}-synth.gguf`);
    const b = join(root, `eq-${preset}-${type}-${hfDtype}-conv.gguf`);
    await writeSynthGGUF(preset, a, type, 3);
    await convertHF(hf, b, type, { onWarning: () => {} });
    const x = readFileSync(a);
    const y = readFileSync(b);
    expect(x.length).toBe(y.length);
    expect(x.equals(y)).toBe(true);
  });
});

describe("convert checks its input", () => {
  const quiet = { onWarning: () => {} };
  const configOnly = (name: string, edit: (c: Record<string, unknown>) => void) => {
    const d = join(root, name);
    mkdirSync(d);
    const c = presetConfig("tiny");
    edit(c);
    writeFileSync(join(d, "config.json"), JSON.stringify(c));
    return d;
  };
  // Off Arcade100k's 100352 rows the vocabulary is a small placeholder: these conversions stay fast.
  const small = (c: Record<string, unknown>) => {
    c.vocab_size = 300;
  };

  it("needs a config.json", async () => {
    await expect(convertHF(tempDir("noconf"), join(root, "x.gguf"), "f32")).rejects.toThrow(/no config.json/);
  });

  it("names a missing config key", async () => {
    const d = configOnly("nokey", (c) => delete c.intermediate_size);
    await expect(convertHF(d, join(root, "x.gguf"), "f32", quiet)).rejects.toThrow(/intermediate_size is missing/);
  });

  it("refuses other architectures", async () => {
    const d = configOnly("llama", (c) => (c.model_type = "llama"));
    await expect(convertHF(d, join(root, "x.gguf"), "f32", quiet)).rejects.toThrow(/model_type is "llama"/);
  });

  it("names missing tensors before writing anything", async () => {
    const d = await customHF(join(root, "missing"), small, { keep: (n) => n !== "model.layers.1.mlp.up_proj.weight" && n !== "lm_head.weight" });
    const out = join(root, "missing.gguf");
    await expect(convertHF(d, out, "f32", quiet)).rejects.toThrow(/missing 2 tensor\(s\).*model\.layers\.1\.mlp\.up_proj\.weight, lm_head\.weight/);
    expect(() => readFileSync(out)).toThrow();
  });

  it("names a tensor with an unexpected shape", async () => {
    const d = await customHF(join(root, "shape"), small, {
      keep: (n) => n !== "model.layers.0.self_attn.k_proj.weight",
      extra: [{ name: "model.layers.0.self_attn.k_proj.weight", shape: [32, 64] }],
    });
    await expect(convertHF(d, join(root, "x.gguf"), "f32", quiet)).rejects.toThrow(/k_proj\.weight has shape \[32, 64\], expected \[64, 64\]/);
  });

  it("warns about unknown extra tensors and converts anyway", async () => {
    const d = await customHF(join(root, "extra"), small, { extra: [{ name: "model.layers.0.self_attn.rotary_emb.inv_freq", shape: [2] }] });
    const warnings: string[] = [];
    await convertHF(d, join(root, "extra.gguf"), "f32", { onWarning: (w) => warnings.push(w) });
    expect(warnings.join("\n")).toMatch(/ignoring 1 unexpected tensor\(s\): model\.layers\.0\.self_attn\.rotary_emb\.inv_freq/);
  });

  it("reads the stablelm_epoch era keys, and writes use_parallel_residual = true when the config lacks it", async () => {
    const d = await customHF(join(root, "epoch"), (c) => {
      small(c);
      c.model_type = "stablelm_epoch";
      c.rope_pct = c.partial_rotary_factor;
      c.norm_eps = c.layer_norm_eps;
      delete c.partial_rotary_factor;
      delete c.layer_norm_eps;
      delete c.use_parallel_residual;
    });
    const out = join(root, "epoch.gguf");
    await convertHF(d, out, "f16", quiet);
    const g = await openGGUF(out);
    expect(metaNumber(g.metadata, "stablelm.rope.dimension_count")).toBe(4);
    expect(metaNumber(g.metadata, "stablelm.attention.layer_norm_epsilon")).toBeCloseTo(1e-5, 10);
    // docs/model.md, The parallel-residual flag: the key says true, the model is sequential: ffn_norm tensors are present.
    expect(metaBool(g.metadata, "stablelm.use_parallel_residual")).toBe(true);
    expect(g.tensorByName.has("blk.0.ffn_norm.weight")).toBe(true);
    await g.close();
  });

  it("falls back to F16 for rows that are not whole Q4_0 blocks, and to a placeholder vocabulary off Arcade100k", async () => {
    const d = await customHF(join(root, "odd"), (c) => {
      c.intermediate_size = 72;
      c.vocab_size = 300;
    });
    const out = join(root, "odd.gguf");
    const warnings: string[] = [];
    await convertHF(d, out, "q4_0", { onWarning: (w) => warnings.push(w) });
    const text = warnings.join("\n");
    expect(text).toMatch(/2 tensors have rows that are not whole blocks .*blk\.0\.ffn_down\.weight: row length 72/);
    expect(text).toMatch(/placeholder vocabulary/);
    const g = await openGGUF(out);
    expect(g.tensor("blk.0.ffn_down.weight").type).toBe(TensorType.F16);
    expect(g.tensor("blk.0.ffn_up.weight").type).toBe(TensorType.Q4_0);
    expect(g.tensor("output.weight").type).toBe(TensorType.Q4_0);
    expect(metaArray(g.metadata, "tokenizer.ggml.tokens")).toHaveLength(300);
    await g.close();
  });

  it("writes absent LayerNorm biases as zeros (12B use_norm_bias: false)", async () => {
    const d = await customHF(join(root, "nobias"), small, { keep: (n) => !/layernorm\.bias$|^model\.norm\.bias$/.test(n) });
    const out = join(root, "nobias.gguf");
    const warnings: string[] = [];
    await convertHF(d, out, "f32", { onWarning: (w) => warnings.push(w) });
    expect(warnings.join("\n")).toMatch(/5 LayerNorm bias tensor\(s\) absent/);
    const g = await openGGUF(out);
    const b = dequantize(TensorType.F32, await g.readTensor("output_norm.bias"), H);
    expect(Array.from(b).every((v) => v === 0)).toBe(true);
    await g.close();
  });

  it("uses tokenizer.json and tokenizer_config.json when present", async () => {
    const d = await customHF(join(root, "tok"), (c) => (c.vocab_size = 512), { dtype: "BF16" });
    writeFileSync(join(d, "tokenizer.json"), JSON.stringify({
      version: "1.0",
      added_tokens: [
        { id: 257, content: "<|endoftext|>", special: true },
        { id: 300, content: "<|user|>", special: false },
      ],
      model: { type: "BPE", vocab: { "!": 0, Ġ: 1, h: 2, e: 3, he: 4, Ġhe: 5 }, merges: ["h e", ["Ġ", "he"]] },
    }));
    writeFileSync(join(d, "tokenizer_config.json"), JSON.stringify({
      bos_token: "<|endoftext|>",
      eos_token: { content: "<|endoftext|>", __type: "AddedToken" },
      add_bos_token: false,
      chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}",
    }));
    const out = join(root, "tok.gguf");
    await convertHF(d, out, "f32", quiet);
    const g = await openGGUF(out);
    const m = g.metadata;
    const tokens = metaArray(m, "tokenizer.ggml.tokens")!;
    const types = metaArray(m, "tokenizer.ggml.token_type")!;
    expect(tokens).toHaveLength(512);
    expect(tokens.slice(0, 7)).toEqual(["!", "Ġ", "h", "e", "he", "Ġhe", "[PAD6]"]);
    expect([types[0], types[6], types[257], types[300], types[511]]).toEqual([1, 5, 3, 4, 5]);
    expect([tokens[257], tokens[300], tokens[511]]).toEqual(["<|endoftext|>", "<|user|>", "[PAD511]"]);
    expect(metaArray(m, "tokenizer.ggml.merges")).toEqual(["h e", "Ġ he"]);
    expect(metaString(m, "tokenizer.ggml.pre")).toBe("stablelm2");
    expect(metaNumber(m, "tokenizer.ggml.bos_token_id")).toBe(257);
    expect(metaNumber(m, "tokenizer.ggml.eos_token_id")).toBe(257);
    expect(metaBool(m, "tokenizer.ggml.add_bos_token")).toBe(false);
    expect(metaString(m, "tokenizer.chat_template")).toBe("{% for m in messages %}{{ m.content }}{% endfor %}");
    await g.close();
  });
});
