/** `edgelm convert`: a Hugging Face StableLM folder → GGUF. */
import { existsSync } from "node:fs";
import { convertHF } from "../../../weights-tools/convert";
import { isOutType, OUT_TYPES } from "../../../weights-tools/mapping";
import { formatBytes, progressBar } from "../../../weights-tools/progress";
import { parseCommand, required, UsageError } from "../args";

const spec = {
  name: "convert",
  summary: "convert a Hugging Face StableLM checkpoint to GGUF",
  usage: "convert --hf DIR --out FILE.gguf [--type q4_0]",
  details: `
Options:
  --hf DIR        Hugging Face model folder: config.json, model.safetensors (or
                  model.safetensors.index.json + shards), optionally tokenizer.json
                  and tokenizer_config.json (chat template)
  --out FILE      output GGUF path
  --type T        ${OUT_TYPES.slice(0, 7).join(" | ")}
                  | ${OUT_TYPES.slice(7).join(" | ")}
                  (default q4_0: the type the edge runtime serves; every 2-D
                  weight incl. output.weight is Q4_0, norms and biases stay F32).
                  The other quantized types use llama-quantize's per-tensor mix,
                  e.g. q4_k_m: Q4_K with Q6_K for output.weight and some
                  attn_v/ffn_down (docs/quantization.md)
  --name NAME     general.name (default: the model's repo or folder name)

Without tokenizer.json the built-in Arcade100k vocabulary is written when
vocab_size is 100352, else a placeholder vocabulary (with a warning).
`,
  options: {
    hf: { type: "string" },
    out: { type: "string" },
    type: { type: "string" },
    name: { type: "string" },
  },
} as const;

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const dir = required("convert", opts.hf, "hf");
  const out = required("convert", opts.out, "out");
  const type = opts.type ?? "q4_0";
  if (!isOutType(type)) throw new UsageError(`convert: --type must be one of ${OUT_TYPES.join(", ")}, got "${type}"`);
  if (!existsSync(dir)) throw new Error(`no such folder: ${dir}`);
  const bar = progressBar(`convert ${type}`);
  const r = await convertHF(dir, out, type, {
    name: opts.name,
    onProgress: (p) => bar.update(p.bytes, p.totalBytes, p.name),
    onWarning: (w) => bar.log(`warning: ${w}`),
  });
  bar.finish(`convert: wrote ${out} (${type}, ${r.tensors} tensors, ${formatBytes(r.bytes)}) in ${r.seconds.toFixed(1)} s`);
  return 0;
}
