/**
 * Deterministic synthetic StableLM models (random weights, real shapes) for tests and benchmarks,
 * written as a Hugging Face folder and/or a GGUF. The GGUF goes through the same mapping as
 * `convert`, so synth's GGUF equals converting synth's HF folder, byte for byte.
 *
 * Every value is rounded to bfloat16 precision: then the f32 and bf16 HF exports hold exactly the
 * same numbers and both convert to the identical GGUF.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeStableLMGGUF, type ConvertProgress, type ConvertResult, type WriteOptions } from "./convert";
import { expectedHFTensors, type OutType } from "./mapping";
import { hashString, seedKeys, Xoshiro128 } from "./prng";
import { rowsOf, writeSafetensors, type TensorSource } from "./safetensors";
import { parseStableLMConfig, type StableLMParams } from "./stablelm-config";

export type PresetName = "tiny" | "tiny-parallel" | "small" | "full2l" | "1_6b";

interface PresetShape {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  partial_rotary_factor: number;
  use_qkv_bias: boolean;
  qk_layernorm: boolean;
  use_parallel_residual: boolean;
  max_position_embeddings: number;
}

const ARCADE_ROWS = 100352;

const PRESETS: Record<PresetName, PresetShape> = {
  /** The 1.6B layout at toy size: a forward pass is a few milliseconds, and the real tokenizer applies. */
  tiny: {
    vocab_size: ARCADE_ROWS, hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 4, partial_rotary_factor: 0.25,
    use_qkv_bias: true, qk_layernorm: false, use_parallel_residual: false, max_position_embeddings: 4096,
  },
  /** The 12B layout at toy size: GQA, per-head q/k LayerNorm, parallel residual, no qkv bias. */
  "tiny-parallel": {
    vocab_size: ARCADE_ROWS, hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, partial_rotary_factor: 0.25,
    use_qkv_bias: false, qk_layernorm: true, use_parallel_residual: true, max_position_embeddings: 4096,
  },
  /**
   * The 1.6B layout at the smallest size whose rows are whole K-quant blocks
   * (256): hidden 256 and ffn 768, so a q4_k_m file holds real Q4_K/Q6_K
   * matrices where `tiny` falls back to 32-element types.
   */
  small: {
    vocab_size: ARCADE_ROWS, hidden_size: 256, intermediate_size: 768, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 4, partial_rotary_factor: 0.25,
    use_qkv_bias: true, qk_layernorm: false, use_parallel_residual: false, max_position_embeddings: 4096,
  },
  /** Every tensor shape of Stable LM 2 1.6B (docs/model.md, Hyper-parameters), two layers. */
  full2l: {
    vocab_size: ARCADE_ROWS, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 2,
    num_attention_heads: 32, num_key_value_heads: 32, partial_rotary_factor: 0.25,
    use_qkv_bias: true, qk_layernorm: false, use_parallel_residual: false, max_position_embeddings: 4096,
  },
  /** The full 1.6B shape, 24 layers. */
  "1_6b": {
    vocab_size: ARCADE_ROWS, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 24,
    num_attention_heads: 32, num_key_value_heads: 32, partial_rotary_factor: 0.25,
    use_qkv_bias: true, qk_layernorm: false, use_parallel_residual: false, max_position_embeddings: 4096,
  },
};

export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

export function isPresetName(s: string): s is PresetName {
  return Object.hasOwn(PRESETS, s);
}

/** The name synthetic models carry, so nobody mistakes one for the real model. */
export function synthModelName(preset: PresetName): string {
  return `edgelm-synth-${preset} (random weights)`;
}

/** A preset's config.json, with the keys transformers writes for StableLmForCausalLM. */
export function presetConfig(preset: PresetName, hfDtype: "f32" | "bf16" = "f32"): Record<string, unknown> {
  const p = PRESETS[preset];
  if (!p) throw new Error(`unknown preset ${JSON.stringify(preset)} (one of ${PRESET_NAMES.join(", ")})`);
  return {
    _name_or_path: synthModelName(preset),
    architectures: ["StableLmForCausalLM"],
    attention_dropout: 0.0,
    bos_token_id: 100257,
    eos_token_id: 100257,
    hidden_act: "silu",
    hidden_dropout: 0.0,
    hidden_size: p.hidden_size,
    initializer_range: 0.02,
    intermediate_size: p.intermediate_size,
    layer_norm_eps: 1e-5,
    max_position_embeddings: p.max_position_embeddings,
    model_type: "stablelm",
    num_attention_heads: p.num_attention_heads,
    num_hidden_layers: p.num_hidden_layers,
    num_key_value_heads: p.num_key_value_heads,
    partial_rotary_factor: p.partial_rotary_factor,
    qk_layernorm: p.qk_layernorm,
    rope_scaling: null,
    rope_theta: 10000,
    tie_word_embeddings: false,
    torch_dtype: hfDtype === "bf16" ? "bfloat16" : "float32",
    transformers_version: "4.44.2",
    use_cache: true,
    use_parallel_residual: p.use_parallel_residual,
    use_qkv_bias: p.use_qkv_bias,
    vocab_size: p.vocab_size,
  };
}

export function presetParams(preset: PresetName): StableLMParams {
  return parseStableLMConfig(presetConfig(preset), `preset ${preset}`);
}

/** How a tensor's values are drawn: value = mean + std·z, z ≈ N(0, 1). */
function distribution(name: string, shape: number[]): { mean: number; std: number } {
  if (name === "model.embed_tokens.weight") return { mean: 0, std: 1 };
  if (name.includes("layernorm") || name.startsWith("model.norm.")) {
    // LayerNorm weights near 1 and small non-zero biases, so a runtime that drops either is caught.
    return name.endsWith(".bias") ? { mean: 0, std: 0.05 } : { mean: 1, std: 0.1 };
  }
  if (name.endsWith(".bias")) return { mean: 0, std: 0.1 };
  // std 1/√fan_in keeps every projection's output near unit scale (≈ 0.02 at the real 2048 width).
  return { mean: 0, std: 1 / Math.sqrt(shape[shape.length - 1]) };
}

/** The synthetic weights as a tensor source: any rows of any tensor, in any order. */
export function synthSource(hp: StableLMParams, seed: number): TensorSource {
  const [lo, hi] = seedKeys(seed);
  const shapes = new Map(expectedHFTensors(hp).map((t) => [t.name, t.shape]));
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const shapeOf = (name: string): number[] => {
    const s = shapes.get(name);
    if (!s) throw new Error(`synthetic model has no tensor ${name}`);
    return s;
  };
  return {
    names: () => [...shapes.keys()],
    has: (name) => shapes.has(name),
    shape: shapeOf,
    async readRows(name, start, count) {
      const shape = shapeOf(name);
      const { rows, rowLength } = rowsOf(shape);
      if (start < 0 || start + count > rows) throw new RangeError(`${name}: rows [${start}, ${start + count}) out of range (${rows} rows)`);
      const { mean, std } = distribution(name, shape);
      const key = hashString(name);
      const out = new Uint32Array(count * rowLength);
      for (let r = 0; r < count; r++) {
        const rng = new Xoshiro128(lo, hi, key, start + r);
        const base = r * rowLength;
        for (let i = 0; i < rowLength; i++) {
          f[0] = mean + std * rng.normal();
          // Round to nearest-even bfloat16 (finite values only here), kept as f32 bits.
          const bits = u[0];
          out[base + i] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
        }
      }
      return new Float32Array(out.buffer);
    },
  };
}

export interface SynthOptions {
  preset: PresetName;
  seed?: number;
  /** GGUF output path. */
  out?: string;
  /** GGUF type; default f32 for the tiny presets, q4_k_m for small, q4_0 for the 1.6B-shaped ones. */
  type?: OutType;
  /** HF folder output (config.json, generation_config.json, model.safetensors). */
  hfOut?: string;
  hfDtype?: "f32" | "bf16";
  onProgress?: (stage: "hf" | "gguf", p: ConvertProgress) => void;
  onWarning?: (msg: string) => void;
}

export function defaultSynthType(preset: PresetName): OutType {
  if (preset === "tiny" || preset === "tiny-parallel") return "f32";
  return preset === "small" ? "q4_k_m" : "q4_0";
}

/** Writes a preset's HF folder. */
export async function writeSynthHF(preset: PresetName, dir: string, seed = 0, hfDtype: "f32" | "bf16" = "f32", onProgress?: (p: ConvertProgress) => void): Promise<void> {
  const hp = presetParams(preset);
  const src = synthSource(hp, seed);
  await mkdir(dir, { recursive: true });
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  await writeFile(join(dir, "config.json"), json(presetConfig(preset, hfDtype)));
  await writeFile(join(dir, "generation_config.json"), json({ _from_model_config: true, bos_token_id: 100257, eos_token_id: 100257, transformers_version: "4.44.2" }));
  const tensors = expectedHFTensors(hp).map((t) => ({ name: t.name, shape: t.shape, rows: (start: number, count: number) => src.readRows(t.name, start, count) }));
  const es = hfDtype === "bf16" ? 2 : 4;
  const totalBytes = tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * es, 0);
  await writeSafetensors(join(dir, "model.safetensors"), tensors, hfDtype === "bf16" ? "BF16" : "F32", {
    onTensor: (i, n, name, bytes) => onProgress?.({ tensor: i, tensors: n, name, bytes, totalBytes }),
  });
}

/** Writes a preset's GGUF (no tokenizer files: vocab 100352 gets the built-in Arcade100k vocabulary). */
export async function writeSynthGGUF(preset: PresetName, out: string, type: OutType = defaultSynthType(preset), seed = 0, opts: Pick<SynthOptions, "onWarning"> & Pick<WriteOptions, "onProgress" | "rewriteMetadata"> = {}): Promise<ConvertResult> {
  const hp = presetParams(preset);
  return writeStableLMGGUF(hp, synthSource(hp, seed), out, type, { name: synthModelName(preset), ...opts });
}

export async function synth(opts: SynthOptions): Promise<{ gguf?: ConvertResult }> {
  if (!isPresetName(opts.preset)) throw new Error(`unknown preset ${JSON.stringify(opts.preset)} (one of ${PRESET_NAMES.join(", ")})`);
  if (!opts.out && !opts.hfOut) throw new Error("synth: nothing to write (give an output GGUF path and/or an HF folder)");
  const seed = opts.seed ?? 0;
  if (opts.hfOut) await writeSynthHF(opts.preset, opts.hfOut, seed, opts.hfDtype ?? "f32", (p) => opts.onProgress?.("hf", p));
  if (!opts.out) return {};
  const gguf = await writeSynthGGUF(opts.preset, opts.out, opts.type ?? defaultSynthType(opts.preset), seed, {
    onWarning: opts.onWarning,
    onProgress: (p) => opts.onProgress?.("gguf", p),
  });
  return { gguf };
}
