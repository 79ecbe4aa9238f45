import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import type { Estimate, Percentiles } from "../../generate/eval-stats";
import { perplexity, planChunks, type ChunkPlan, type PerplexityResult } from "../../generate/perplexity";
import { metaBool } from "../../gguf/metadata";
import { openGGUF } from "../../gguf/node";
import type { Metadata } from "../../gguf/types";
import { configFromGGUF } from "../../model/config";
import { loadEngine, type Engine } from "../../node/engines";
import { Tokenizer } from "../../tokenizer/node";
import { vocabularyDifference } from "../../tokenizer/same-vocabulary";
import { progressBar } from "../../../weights-tools/progress";
import { UsageError, intOption, parseCommand, required } from "../args";
import { engineOption, threadsOption } from "./logits";

const spec = {
  name: "perplexity",
  summary: "Measure a model's perplexity over a text, and optionally its KL divergence from a base model (llama-perplexity's method).",
  usage: "perplexity --model F.gguf --text FILE [--context 512] [--chunks N] [--kl-base BASE.gguf] [--engine ref|wasm] [--threads N] [--json]",
  details: `
  --model FILE      the stablelm GGUF to measure
  --text FILE       a UTF-8 text file, tokenized with the model's own vocabulary; it must give at
                    least two chunks (2 × --context tokens)
  --context N       tokens per chunk, even, at most the model's context length; default 512.
                    Each chunk is evaluated from an empty cache and only its second half is
                    scored, as llama.cpp's llama-perplexity does (docs/quantization.md)
  --chunks N        evaluate at most the first N chunks; default all whole chunks of the text
  --kl-base FILE    also run this model (the same vocabulary, e.g. the F32 file a quant was made
                    from) over the same chunks and report KL(base ‖ model): mean, percentiles
                    (p99 …), the top-1 agreement and the change in the next token's probability
  --engine NAME     wasm or ref (float64 reference, slow); default wasm, for both models
  --threads N       threads of the wasm engine; default one per core
  --json            print one JSON object on stdout instead of the report

  A progress bar is drawn on stderr when it is a terminal.`,
  options: {
    model: { type: "string" },
    text: { type: "string" },
    context: { type: "string" },
    chunks: { type: "string" },
    "kl-base": { type: "string" },
    engine: { type: "string" },
    threads: { type: "string" },
    json: { type: "boolean" },
  },
} as const;

const cmd = "perplexity";

interface ModelFile {
  path: string;
  metadata: Metadata;
  contextLength: number;
}

async function readModelHeader(path: string): Promise<ModelFile> {
  const file = await openGGUF(path);
  await file.close();
  return { path, metadata: file.metadata, contextLength: configFromGGUF(file.metadata, file.tensorByName).contextLength };
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(err.code === "ENOENT" ? `no such file: ${path}` : err.code === "EISDIR" ? `${path} is not a file` : `cannot read ${path}: ${err.message}`);
  }
}

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const modelPath = required(cmd, opts.model, "model");
  const textPath = required(cmd, opts.text, "text");
  const context = intOption(cmd, opts.context, "context", 512, 4);
  if (context % 2 !== 0) throw new UsageError(`${cmd}: --context must be even (its second half is scored), got ${context}`);
  const maxChunks = intOption(cmd, opts.chunks, "chunks", Number.MAX_SAFE_INTEGER, 1);
  const basePath = opts["kl-base"];
  if (basePath === "") throw new UsageError(`${cmd}: --kl-base needs a file`);
  const engineName = engineOption(cmd, opts.engine);
  const threads = threadsOption(cmd, opts.threads);

  // Everything that can be refused is checked before a model is loaded.
  const model = await readModelHeader(modelPath);
  if (context > model.contextLength) throw new UsageError(`${cmd}: --context ${context} exceeds the model's context length ${model.contextLength}`);
  const base = basePath === undefined ? undefined : await readModelHeader(basePath);
  if (base) {
    const diff = vocabularyDifference(model.metadata, base.metadata);
    if (diff !== undefined) throw new Error(`${modelPath} and ${basePath} do not share a tokenizer (${diff}); KL divergence compares the same tokens`);
    if (context > base.contextLength) throw new UsageError(`${cmd}: --context ${context} exceeds the base model's context length ${base.contextLength}`);
  }
  const tokenizer = Tokenizer.fromGGUF(model.metadata);
  const tokens = tokenizer.encode(await readText(textPath));
  // As llama.cpp: a vocabulary that adds BOS starts the stream with it and each chunk too (Arcade100k adds none).
  const bos = metaBool(model.metadata, "tokenizer.ggml.add_bos_token") === true ? tokenizer.bosId : undefined;
  if (bos !== undefined) tokens.unshift(bos);
  let plan: ChunkPlan;
  try {
    plan = planChunks(tokens.length, context, maxChunks);
  } catch (e) {
    throw new Error(`${textPath}: ${(e as Error).message}`);
  }

  const t0 = performance.now();
  // One sequence at a time; the head takes a scored piece (64 positions) in one matrix product.
  const engineOpts = { threads, contextLength: context, sequences: 1, maxBatch: 64 };
  const engines: Engine[] = [];
  try {
    engines.push(await loadEngine(modelPath, engineName, engineOpts));
    if (basePath !== undefined) engines.push(await loadEngine(basePath, engineName, engineOpts));
    const t1 = performance.now();
    const bar = progressBar(`perplexity ${basename(modelPath)}`, process.stderr, (n) => `${n}`);
    const result = await perplexity(engines[0], tokens, {
      context,
      maxChunks,
      bos,
      base: engines[1],
      onChunk: (done, total, ppl) => bar.update(done, total, `chunks, PPL ${ppl.toFixed(4)}`),
    });
    const t2 = performance.now();
    bar.finish(`perplexity: ${plan.chunks} chunks of ${context} in ${((t2 - t1) / 1000).toFixed(1)} s`);
    const timings = {
      load_ms: Math.round(t1 - t0),
      eval_ms: Math.round(t2 - t1),
      tokens_per_s: Math.round((plan.chunks * (context - 1) * engines.length * 1000) / (t2 - t1)),
      engine: engines[0].name,
    };
    const info = { model: modelPath, text: textPath, text_tokens: tokens.length, bos: bos !== undefined, kl_base: basePath };
    process.stdout.write(opts.json ? `${JSON.stringify(toJson(result, info, timings))}\n` : report(result, info, timings.engine));
    return 0;
  } finally {
    for (const e of engines) await e.close?.();
  }
}

interface RunInfo {
  model: string;
  text: string;
  text_tokens: number;
  bos: boolean;
  kl_base?: string;
}

/** {name: value, name_uncertainty: ±} */
function est(name: string, e: Estimate): Record<string, number> {
  return { [name]: e.value, [`${name}_uncertainty`]: e.uncertainty };
}

function toJson(r: PerplexityResult, info: RunInfo, timings: Record<string, unknown>) {
  const { plan, kl } = r;
  return {
    ...info,
    method: "llama-perplexity",
    context: plan.context,
    chunks: plan.chunks,
    scored_per_chunk: plan.scoredPerChunk,
    scored: r.nll.length,
    ...est("ppl", r.ppl),
    ...est("mean_nll", r.meanNll),
    running_ppl: r.runningPpl,
    kl: kl && {
      ...est("ppl_base", kl.pplBase),
      correlation: kl.correlation,
      ...est("ln_ppl_ratio", kl.lnPplRatio),
      ...est("ppl_ratio", kl.pplRatio),
      ...est("ppl_diff", kl.pplDiff),
      kld: { ...est("mean", kl.kld.mean), ...kl.kld.percentiles },
      delta_p: { ...est("mean", kl.deltaP.mean), ...est("rms", kl.deltaP.rms), ...kl.deltaP.percentiles },
      ...est("top1_agreement", kl.sameTop),
    },
    timings,
  };
}

const f = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : "n/a");
const pm = (e: Estimate, digits: number, scale = 1) => `${f(e.value * scale, digits)} ± ${f(e.uncertainty * scale, digits)}`;

function percentileLines(p: Percentiles, digits: number, scale = 1, unit = ""): string[] {
  return Object.entries(p).map(([name, v]) => `    ${name.replace("_", ".").padEnd(7)} ${f(v * scale, digits)}${unit}`);
}

function report(r: PerplexityResult, info: RunInfo, engine: string): string {
  const { plan, kl } = r;
  const lines = [
    `model    ${info.model}`,
    `engine   ${engine}`,
    `text     ${info.text}: ${info.text_tokens} tokens${info.bos ? " (BOS first)" : ""}`,
    `chunks   ${plan.chunks} of ${plan.context} tokens; positions ${plan.first}..${plan.context - 2} of each scored: ${r.nll.length} predictions`,
    `running  ${r.runningPpl.map((p, i) => `[${i + 1}]${p.toFixed(4)}`).join(",")}`,
    `PPL      ${pm(r.ppl, 4)}   (mean NLL ${pm(r.meanNll, 6)} nats)`,
  ];
  if (kl) {
    lines.push(
      "",
      `against  ${info.kl_base}`,
      `PPL(base)             ${pm(kl.pplBase, 4)}`,
      `ln(PPL/PPL(base))     ${pm(kl.lnPplRatio, 6)}`,
      `PPL/PPL(base)         ${pm(kl.pplRatio, 6)}`,
      `PPL − PPL(base)       ${pm(kl.pplDiff, 6)}`,
      `correlation of ln PPL ${f(kl.correlation * 100, 2)} %`,
      `KL(base ‖ model)      mean ${pm(kl.kld.mean, 6)} nats`,
      ...percentileLines(kl.kld.percentiles, 6),
      `top-1 agreement       ${pm(kl.sameTop, 3, 100)} %`,
      `Δp (p − p_base of the next token)  mean ${pm(kl.deltaP.mean, 4, 100)} %, RMS ${pm(kl.deltaP.rms, 4, 100)} %`,
      ...percentileLines(kl.deltaP.percentiles, 4, 100, " %"),
    );
  }
  return `${lines.join("\n")}\n`;
}
