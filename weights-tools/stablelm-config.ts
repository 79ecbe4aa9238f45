/**
 * StableLM hyper-parameters from a Hugging Face config.json, in both eras: transformers'
 * `stablelm` and the original remote-code `stablelm_epoch` (`rope_pct`, `norm_eps`). docs/model.md, Hyper-parameters.
 */

export interface StableLMParams {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKVHeads: number;
  headDim: number;
  /** int(partial_rotary_factor × head_dim), what llama.cpp calls rope.dimension_count. */
  rotaryDim: number;
  partialRotaryFactor: number;
  ropeTheta: number;
  layerNormEps: number;
  maxPositions: number;
  useQkvBias: boolean;
  qkLayernorm: boolean;
  /** What the model computes (HF default false). */
  parallelResidual: boolean;
  /** What llama.cpp's converter writes as stablelm.use_parallel_residual: the config value if present, else true (docs/model.md, The parallel-residual flag). */
  parallelResidualKey: boolean;
  tieWordEmbeddings: boolean;
  bosTokenId?: number;
  eosTokenId?: number;
  /** `_name_or_path` when the config carries one. */
  nameOrPath?: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Json = Record<string, unknown>;

function pick(cfg: Json, keys: string[], where: string, check: (v: unknown) => boolean, what: string): unknown {
  for (const k of keys) {
    if (cfg[k] === undefined || cfg[k] === null) continue;
    if (!check(cfg[k])) throw new ConfigError(`${where}: ${k} should be ${what}, found ${JSON.stringify(cfg[k])}`);
    return cfg[k];
  }
  return undefined;
}

const posInt = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v > 0;
const posNum = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;
const isBool = (v: unknown) => typeof v === "boolean";

export function parseStableLMConfig(cfg: unknown, where = "config.json"): StableLMParams {
  if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg)) throw new ConfigError(`${where}: not a JSON object`);
  const c = cfg as Json;
  const modelType = c.model_type;
  if (modelType !== "stablelm" && modelType !== "stablelm_epoch") {
    throw new ConfigError(`${where}: model_type is ${JSON.stringify(modelType)}; only StableLM (stablelm, stablelm_epoch) is supported`);
  }
  const need = (keys: string[], check: (v: unknown) => boolean, what: string): unknown => {
    const v = pick(c, keys, where, check, what);
    if (v === undefined) throw new ConfigError(`${where}: ${keys.join(" or ")} is missing`);
    return v;
  };
  const optional = <T>(keys: string[], check: (v: unknown) => boolean, what: string, def: T): T => (pick(c, keys, where, check, what) as T | undefined) ?? def;

  const hiddenSize = need(["hidden_size"], posInt, "a positive integer") as number;
  const numHeads = need(["num_attention_heads"], posInt, "a positive integer") as number;
  const numKVHeads = optional(["num_key_value_heads"], posInt, "a positive integer", numHeads);
  const partialRotaryFactor = need(["partial_rotary_factor", "rope_pct"], (v) => typeof v === "number" && v > 0 && v <= 1, "a number in (0, 1]") as number;
  if (hiddenSize % numHeads !== 0) throw new ConfigError(`${where}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`);
  if (numHeads % numKVHeads !== 0) throw new ConfigError(`${where}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKVHeads}`);
  const headDim = hiddenSize / numHeads;
  const act = c.hidden_act;
  if (act !== undefined && act !== "silu") throw new ConfigError(`${where}: hidden_act ${JSON.stringify(act)} is not supported (StableLM uses silu)`);
  const parallel = pick(c, ["use_parallel_residual"], where, isBool, "a boolean") as boolean | undefined;
  const id = (k: string) => {
    const v = c[k];
    return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  };
  return {
    modelType,
    vocabSize: need(["vocab_size"], posInt, "a positive integer") as number,
    hiddenSize,
    intermediateSize: need(["intermediate_size"], posInt, "a positive integer") as number,
    numLayers: need(["num_hidden_layers"], posInt, "a positive integer") as number,
    numHeads,
    numKVHeads,
    headDim,
    rotaryDim: Math.floor(partialRotaryFactor * headDim),
    partialRotaryFactor,
    ropeTheta: optional(["rope_theta"], posNum, "a positive number", 10000),
    layerNormEps: need(["layer_norm_eps", "norm_eps"], posNum, "a positive number") as number,
    maxPositions: need(["max_position_embeddings"], posInt, "a positive integer") as number,
    useQkvBias: optional(["use_qkv_bias"], isBool, "a boolean", false),
    qkLayernorm: optional(["qk_layernorm"], isBool, "a boolean", false),
    parallelResidual: parallel ?? false,
    parallelResidualKey: parallel ?? true,
    tieWordEmbeddings: optional(["tie_word_embeddings"], isBool, "a boolean", false),
    bosTokenId: id("bos_token_id"),
    eosTokenId: id("eos_token_id"),
    nameOrPath: typeof c._name_or_path === "string" && c._name_or_path !== "" ? c._name_or_path : undefined,
  };
}
