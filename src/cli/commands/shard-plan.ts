/** `edgelm shard-plan`: cut a GGUF into Worker-sized layer and head shards (docs/sharding.md). */
import { mkdir, writeFile, chmod } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EMBEDDING_HASHES_FILE, formatPlan, planFile, renderDeployment } from "../../../weights-tools/shard-plan";
import { checkDeployment, formatDeployment, MAX_SHARD_CLASSES, type Deployment } from "../../shard/replicas";
import { SHARD_LOGITS_BATCH } from "../../shard/shard-part";
import { floatOption, intOption, parseCommand, required, UsageError } from "../args";

const root = fileURLToPath(new URL("../../../", import.meta.url));

const spec = {
  name: "shard-plan",
  summary: "plan layer/head shards of a GGUF that each fit a Worker's memory, and write their wrangler configs",
  usage: "shard-plan --model FILE.gguf [--budget-mb 120] [--context 2048] [--sequences 1] [--replicas 1] [--max-batch N] [--out DIR] [--json]",
  details: `
  --model FILE        the GGUF (its header plans; every range is read once to hash it)
  --budget-mb N       memory per shard isolate, MiB (default 120; production isolates have 128 MB)
  --context N         positions per sequence in each shard's KV cache (default 2048)
  --sequences N       KV budget per shard in full-context sequences (shared by as
                      many shorter ones as fit; least recently used evicted; default 1)
  --prefill-chunk N   positions per prefill pass in a shard (default 32; buffers scale with it)
  --replicas N        independent shard pipelines (default 1): every shard deployed N times, each
                      replica its own script (SHARD_REPLICAS; the output adds memory per replica
                      and in total)
  --max-batch N       sequences one replica runs per batched step (MAX_BATCH; default 4, the logits
                      rows a head shard computes in one pass, or --sequences if larger; beyond
                      --sequences, only sequences shorter than the context share the KV)
  --overhead-mb N     JS/isolate memory assumed per shard beside WASM memory (default 16)
  --key KEY           the GGUF's R2 object key (default the file name)
  --bucket NAME       R2 bucket (default edgelm-models)
  --out DIR           write plan.json, embedding.hashes (a hash per embedding row, uploaded
                      beside plan.json), wrangler.shard-<i>.toml, wrangler.coordinator.toml, deploy.sh
  --json              print the plan as JSON instead of the table`,
  options: {
    model: { type: "string" },
    "budget-mb": { type: "string" },
    context: { type: "string" },
    sequences: { type: "string" },
    "prefill-chunk": { type: "string" },
    replicas: { type: "string" },
    "max-batch": { type: "string" },
    "overhead-mb": { type: "string" },
    key: { type: "string" },
    bucket: { type: "string" },
    out: { type: "string" },
    json: { type: "boolean" },
  },
} as const;

export async function run(argv: string[]): Promise<number> {
  const o = parseCommand(spec, argv);
  if (!o) return 0;
  const model = required("shard-plan", o.model, "model");
  const MiB = 2 ** 20;
  const sequences = intOption("shard-plan", o.sequences, "sequences", 1, 1);
  const deployment: Deployment = {
    replicas: intOption("shard-plan", o.replicas, "replicas", 1, 1, MAX_SHARD_CLASSES),
    // Batched steps raise the sharded aggregate (docs/sharding.md, "Batching"), up to the head shards' logits batch.
    maxBatch: intOption("shard-plan", o["max-batch"], "max-batch", Math.max(sequences, SHARD_LOGITS_BATCH), 1),
  };
  let plan, embeddingHashes;
  try {
    ({ plan, embeddingHashes } = await planFile(model, {
      key: o.key ?? basename(model),
      budgetBytes: Math.floor(floatOption("shard-plan", o["budget-mb"], "budget-mb", 120, 1) * MiB),
      contextLength: intOption("shard-plan", o.context, "context", 2048, 1),
      sequences,
      prefillChunk: intOption("shard-plan", o["prefill-chunk"], "prefill-chunk", 32, 1),
      overheadBytes: Math.floor(floatOption("shard-plan", o["overhead-mb"], "overhead-mb", 16, 0) * MiB),
    }, (p) => checkDeployment(p, deployment)));
  } catch (e) {
    if ((e as Error).name === "ShardPlanError") throw new UsageError(`shard-plan: ${(e as Error).message}`);
    throw e;
  }
  process.stdout.write(o.json ? `${JSON.stringify(plan)}\n` : `${formatPlan(plan)}\n${formatDeployment(plan, deployment)}\n`);
  if (o.out) {
    const dir = resolve(o.out);
    const toml = readFileSync(join(root, "wrangler.toml"), "utf8");
    const flags = toml.match(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m)?.[1] ?? "";
    const files = renderDeployment(plan, {
      bucket: o.bucket ?? "edgelm-models",
      compatibilityDate: toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m)?.[1] ?? "2026-04-20",
      compatibilityFlags: [...flags.matchAll(/"([^"]+)"/g)].map((m) => m[1]),
      shardMain: relative(dir, join(root, "src/shard/worker.ts")),
      coordinatorMain: relative(dir, join(root, "src/worker.ts")),
      modelFile: resolve(model),
      deployment,
    });
    await mkdir(dir, { recursive: true });
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    await writeFile(join(dir, EMBEDDING_HASHES_FILE), embeddingHashes);
    await chmod(join(dir, "deploy.sh"), 0o755);
    process.stderr.write(`wrote ${Object.keys(files).length + 1} files to ${dir}\n`);
  }
  return 0;
}
