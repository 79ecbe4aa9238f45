/**
 * `edgelm download`: fetch a Stable LM 2 checkpoint from the Hugging Face Hub and convert it to
 * GGUF, or (--gguf) fetch a ready-made GGUF and check it against the Hub's sha256.
 */
import { basename, join } from "node:path";
import { convertHF } from "../../../weights-tools/convert";
import { DEFAULT_ENDPOINT, downloadModel, KNOWN_MODELS } from "../../../weights-tools/download";
import { downloadGGUF, parseGGUFRef } from "../../../weights-tools/gguf-download";
import { isOutType, OUT_TYPES } from "../../../weights-tools/mapping";
import { formatBytes, progressBar } from "../../../weights-tools/progress";
import { parseCommand, required, UsageError } from "../args";

const spec = {
  name: "download",
  summary: "download a Stable LM 2 checkpoint (and convert it) or a GGUF from Hugging Face",
  usage: "download --model REPO --dir DIR [--type q4_0] [--out FILE.gguf]\n       edgelm download --gguf OWNER/REPO/PATH.gguf [--out DIR | FILE.gguf]",
  details: `
A ready-made GGUF (--gguf):
  --gguf OWNER/REPO/PATH.gguf
                   e.g. stabilityai/stablelm-2-zephyr-1_6b/stablelm-2-zephyr-1_6b-Q4_0.gguf;
                   checked against the sha256 the Hub records for it (Git LFS), then renamed
                   into place; an interrupted download resumes from OUT.part; a file already
                   there with the right sha256 is not fetched again
  --out DIR|FILE   a folder (the file keeps its name) or a .gguf path (default models/)

A checkpoint to convert (--model):
  --model REPO     ${KNOWN_MODELS.join(" | ")}
                   (any StableLM repo "owner/name" works)
  --dir DIR        where the Hugging Face files go (config.json, tokenizer files,
                   model.safetensors or its shards); files already there are skipped,
                   interrupted downloads resume
  --type T         GGUF type: ${OUT_TYPES.slice(0, 7).join(" | ")}
                   | ${OUT_TYPES.slice(7).join(" | ")} (default q4_0)
  --out FILE       GGUF path (default DIR/<name>-<type>.gguf)
  --no-convert     only download

Both:
  --endpoint URL   Hub base URL (default ${DEFAULT_ENDPOINT}; a mirror also works)
  --revision REV   branch, tag or commit (default main)

Set HF_TOKEN for gated or private repositories (sent to the Hub only, never to the
CDN it redirects downloads to).
`,
  options: {
    model: { type: "string" },
    gguf: { type: "string" },
    dir: { type: "string" },
    type: { type: "string" },
    out: { type: "string" },
    "no-convert": { type: "boolean" },
    endpoint: { type: "string" },
    revision: { type: "string" },
  },
} as const;

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const endpoint = opts.endpoint ?? DEFAULT_ENDPOINT;
  if (!/^https?:\/\//.test(endpoint)) throw new UsageError(`download: --endpoint must be an http(s) URL, got "${endpoint}"`);
  if (opts.gguf !== undefined) {
    const clash = (["model", "dir", "type", "no-convert"] as const).filter((k) => opts[k] !== undefined);
    if (clash.length) throw new UsageError(`download: --gguf cannot be combined with ${clash.map((k) => `--${k}`).join(", ")} (see --help)`);
    return downloadOneGGUF(opts.gguf, opts.out, endpoint, opts.revision);
  }
  const model = required("download", opts.model, "model");
  const dir = required("download", opts.dir, "dir");
  const type = opts.type ?? "q4_0";
  if (!isOutType(type)) throw new UsageError(`download: --type must be one of ${OUT_TYPES.join(", ")}, got "${type}"`);
  if (!/^[^/\s]+\/[^/\s]+$/.test(model)) throw new UsageError(`download: --model must be "owner/name", got "${model}"`);

  let bar = progressBar("download");
  let current = "";
  const fetched: string[] = [];
  await downloadModel({
    model, dir, endpoint, revision: opts.revision,
    onInfo: (msg) => bar.log(msg),
    onProgress: (p) => {
      if (p.file !== current) {
        if (current) bar.finish(`downloaded ${current}`);
        current = p.file;
        fetched.push(p.file);
        bar = progressBar(`download ${p.file}`);
      }
      bar.update(p.bytes, p.total ?? 0, "");
    },
  });
  if (current) bar.finish(`downloaded ${current}`);
  process.stderr.write(`download: ${model} is in ${dir} (${fetched.length} file(s) fetched)\n`);
  if (opts["no-convert"]) return 0;

  const out = opts.out ?? join(dir, `${model.split("/")[1]}-${type}.gguf`);
  const conv = progressBar(`convert ${type}`);
  const r = await convertHF(dir, out, type, {
    name: model.split("/")[1],
    onProgress: (p) => conv.update(p.bytes, p.totalBytes, p.name),
    onWarning: (w) => conv.log(`warning: ${w}`),
  });
  conv.finish(`convert: wrote ${out} (${type}, ${r.tensors} tensors, ${formatBytes(r.bytes)}) in ${r.seconds.toFixed(1)} s`);
  return 0;
}

async function downloadOneGGUF(spec: string, out: string | undefined, endpoint: string, revision: string | undefined): Promise<number> {
  let file: string;
  try {
    file = basename(parseGGUFRef(spec).path);
  } catch (e) {
    throw new UsageError(`download: ${(e as Error).message}`);
  }
  const bar = progressBar(`download ${file}`);
  const r = await downloadGGUF({
    spec, out, endpoint, revision,
    onInfo: (msg) => bar.log(msg),
    onProgress: (bytes, total) => bar.update(bytes, total ?? 0),
  });
  const what = r.skipped ? "already there with the Hub's sha256" : `downloaded ${formatBytes(r.bytes)}, sha256 matches the Hub`;
  bar.finish(`download: ${r.path} (${what}): ${r.summary}`);
  return 0;
}
