/**
 * Hugging Face StableLM checkpoint → GGUF, streamed: one tensor is read, converted and written
 * at a time, so converting the 3.3 GB 1.6B checkpoint needs about one tensor's worth of memory.
 * Everything that can be checked (config, tensor names, shapes, dtypes) is checked before a byte
 * is written.
 */
import { readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { tensorByteLength } from "../src/gguf/quant";
import type { Metadata } from "../src/gguf/types";
import type { GGUFSpec } from "../src/gguf/writer";
import { writeGGUFFile } from "../src/gguf/node";
import { removeManifest, writeManifest } from "./manifest";
import { checkSource, expectedHFTensors, ggufTensors, modelMetadata, planTensors, type OutType, isOutType, OUT_TYPES } from "./mapping";
import { SafetensorsCheckpoint, type TensorSource } from "./safetensors";
import { parseStableLMConfig, type StableLMParams } from "./stablelm-config";
import { tokenizerMetadata } from "./vocab";

export interface ConvertProgress {
  /** Tensors written so far / in all. */
  tensor: number;
  tensors: number;
  name: string;
  /** Tensor data bytes written so far / in all (the header is not counted). */
  bytes: number;
  totalBytes: number;
}

export interface WriteOptions {
  /** general.name. */
  name: string;
  /** HF folder to take tokenizer files from; undefined: none (synthetic models). */
  tokenizerDir?: string;
  onProgress?: (p: ConvertProgress) => void;
  /** Defaults to one "warning: …" line on stderr each. */
  onWarning?: (msg: string) => void;
  /** Rewrites the finished metadata (fixtures that mimic files of older converters). */
  rewriteMetadata?: (m: Metadata) => Metadata;
}

export interface ConvertResult {
  path: string;
  tensors: number;
  /** Size of the written file. */
  bytes: number;
  seconds: number;
  warnings: string[];
}

const stderrWarning = (msg: string) => process.stderr.write(`warning: ${msg}\n`);

/**
 * Writes the GGUF of a checked tensor source: the one path both `convert` and `synth` take, so
 * their outputs match byte for byte.
 */
export async function writeStableLMGGUF(hp: StableLMParams, src: TensorSource, outPath: string, type: OutType, opts: WriteOptions): Promise<ConvertResult> {
  const started = Date.now();
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    (opts.onWarning ?? stderrWarning)(msg);
  };
  const { absentBiases, extras } = checkSource(hp, src);
  if (absentBiases.length) warn(`${absentBiases.length} LayerNorm bias tensor(s) absent (e.g. ${absentBiases[0]}): written as zeros`);
  if (extras.length) warn(`ignoring ${extras.length} unexpected tensor(s): ${extras.slice(0, 5).join(", ")}${extras.length > 5 ? ", …" : ""}`);

  const plan = planTensors(hp, (n) => src.has(n));
  const notes: string[] = [];
  const tensors = ggufTensors(plan, type, hp, src, (n) => notes.push(n));
  if (notes.length) warn(notes.length === 1 ? notes[0] : `${notes.length} tensors have rows that are not whole blocks of their type and fall back to another (e.g. ${notes[0]})`);

  const metadata = modelMetadata(hp, type, opts.name);
  for (const [k, v] of await tokenizerMetadata(opts.tokenizerDir, hp, warn)) metadata.set(k, v);
  const spec: GGUFSpec = { metadata: opts.rewriteMetadata?.(metadata) ?? metadata, tensors };
  const sizes = tensors.map((t) => tensorByteLength(t.type, t.dims));
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  let done = 0;
  let bytes = 0;
  await removeManifest(outPath);
  await writeGGUFFile(outPath, spec, (i, total, name, written) => {
    bytes = written;
    done += sizes[i - 1];
    opts.onProgress?.({ tensor: i, tensors: total, name, bytes: done, totalBytes });
  });
  await writeManifest(outPath);
  return { path: outPath, tensors: tensors.length, bytes, seconds: (Date.now() - started) / 1000, warnings };
}

async function readConfig(dir: string): Promise<{ raw: Record<string, unknown>; hp: StableLMParams }> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(err.code === "ENOENT" ? `${dir}: no config.json (is this a Hugging Face model folder?)` : `cannot read ${path}: ${err.message}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return { raw, hp: parseStableLMConfig(raw, path) };
}

/** general.name: the repo name from `_name_or_path` ("stabilityai/stablelm-2-1_6b" → "stablelm-2-1_6b"), else the folder's name. */
function modelName(hp: StableLMParams, dir: string): string {
  if (hp.nameOrPath) return hp.nameOrPath.replace(/\/+$/, "").split("/").pop() || hp.nameOrPath;
  return basename(resolve(dir));
}

export interface ConvertOptions {
  onProgress?: (p: ConvertProgress) => void;
  onWarning?: (msg: string) => void;
  /** Overrides general.name. */
  name?: string;
}

export async function convertHF(dir: string, outPath: string, type: OutType, opts: ConvertOptions = {}): Promise<ConvertResult> {
  if (!isOutType(type)) throw new Error(`unknown output type ${JSON.stringify(type)} (one of ${OUT_TYPES.join(", ")})`);
  const { raw, hp } = await readConfig(dir);
  const warn = opts.onWarning ?? stderrWarning;
  if (raw.rope_scaling !== undefined && raw.rope_scaling !== null) warn(`config.json rope_scaling ${JSON.stringify(raw.rope_scaling)} is not carried into the GGUF (llama.cpp's StableLM converter ignores it too)`);
  const ckpt = await SafetensorsCheckpoint.open(dir);
  try {
    // Only tensors we use must be floats; an integer buffer we ignore (e.g. position ids) is harmless.
    for (const { name } of expectedHFTensors(hp)) {
      if (!ckpt.has(name)) continue;
      const { dtype } = ckpt.info(name);
      if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") throw new Error(`tensor ${name} has dtype ${dtype}; only F32, F16 and BF16 are supported`);
    }
    return await writeStableLMGGUF(hp, ckpt, outPath, type, {
      name: opts.name ?? modelName(hp, dir),
      tokenizerDir: dir,
      onProgress: opts.onProgress,
      onWarning: opts.onWarning,
    });
  } finally {
    await ckpt.close();
  }
}
