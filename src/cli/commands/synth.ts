/** `edgelm synth`: a deterministic random-weight StableLM model, as GGUF and/or a Hugging Face folder. */
import { isOutType, OUT_TYPES } from "../../../weights-tools/mapping";
import { formatBytes, progressBar } from "../../../weights-tools/progress";
import { defaultSynthType, isPresetName, PRESET_NAMES, synth } from "../../../weights-tools/synth";
import { intOption, parseCommand, required, UsageError } from "../args";

const spec = {
  name: "synth",
  summary: "write a synthetic (random-weight) StableLM model",
  usage: "synth --preset NAME (--out FILE.gguf | --hf-out DIR) [options]",
  details: `
Options:
  --preset NAME   ${PRESET_NAMES.join(" | ")}
                    tiny           1.6B layout at toy size (hidden 64, 2 layers, 4 heads,
                                   vocab 100352 so the real Arcade100k tokenizer applies)
                    tiny-parallel  12B layout at toy size (GQA 4/2 heads, per-head q/k
                                   LayerNorm, parallel residual, no qkv bias)
                    small          1.6B layout, hidden 256, ffn 768, 2 layers: the
                                   smallest whose rows are whole K-quant blocks
                    full2l         every 1.6B tensor shape, 2 layers
                    1_6b           the full 1.6B shape, 24 layers (~0.93 GB as q4_0)
  --out FILE      GGUF output path
  --type T        ${OUT_TYPES.slice(0, 7).join(" | ")}
                  | ${OUT_TYPES.slice(7).join(" | ")}
                  (default f32 for tiny*, q4_k_m for small, q4_0 for full2l/1_6b)
  --seed N        random seed (default 0); the same seed gives the same bytes everywhere
  --hf-out DIR    also (or only) write a Hugging Face folder: config.json,
                  generation_config.json, model.safetensors
  --hf-dtype T    f32 | bf16: safetensors dtype for --hf-out (default f32; the values
                  are bf16-exact, so both convert to the same GGUF)

Models are named "edgelm-synth-<preset> (random weights)" (general.name).
`,
  options: {
    preset: { type: "string" },
    out: { type: "string" },
    type: { type: "string" },
    seed: { type: "string" },
    "hf-out": { type: "string" },
    "hf-dtype": { type: "string" },
  },
} as const;

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const preset = required("synth", opts.preset, "preset");
  if (!isPresetName(preset)) throw new UsageError(`synth: --preset must be one of ${PRESET_NAMES.join(", ")}, got "${preset}"`);
  const type = opts.type ?? defaultSynthType(preset);
  if (!isOutType(type)) throw new UsageError(`synth: --type must be one of ${OUT_TYPES.join(", ")}, got "${type}"`);
  const hfDtype = opts["hf-dtype"] ?? "f32";
  if (hfDtype !== "f32" && hfDtype !== "bf16") throw new UsageError(`synth: --hf-dtype must be f32 or bf16, got "${hfDtype}"`);
  if (!opts.out && !opts["hf-out"]) throw new UsageError("synth: give --out FILE.gguf and/or --hf-out DIR (see --help)");
  const seed = intOption("synth", opts.seed, "seed", 0, 0, Number.MAX_SAFE_INTEGER);
  const bars = { hf: progressBar(`synth ${preset} → HF ${hfDtype}`), gguf: progressBar(`synth ${preset} → ${type}`) };
  const started = Date.now();
  const r = await synth({
    preset, seed, type, out: opts.out, hfOut: opts["hf-out"], hfDtype,
    onProgress: (stage, p) => bars[stage].update(p.bytes, p.totalBytes, p.name),
    onWarning: (w) => bars.gguf.log(`warning: ${w}`),
  });
  const wrote = [opts["hf-out"] && `${opts["hf-out"]} (HF, ${hfDtype})`, r.gguf && `${r.gguf.path} (${type}, ${formatBytes(r.gguf.bytes)})`].filter(Boolean).join(" and ");
  bars.gguf.finish(`synth: wrote ${wrote}, seed ${seed}, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}
