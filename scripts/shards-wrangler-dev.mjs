// `shards-dev --wrangler`: the deployment configs that `edgelm shard-plan --out` writes, run
// together by `wrangler dev -c coordinator -c shard-0 …` (one local workerd), with the GGUF and its
// plan put into wrangler's local R2 first. Resolves when wrangler exits.
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { tsImport } from "tsx/esm/api";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
/** wrangler r2 object put refuses larger files. */
const PUT_MAX = 300 * 2 ** 20;

function must(r, what) {
  if (r.status !== 0) {
    console.error(`shards-dev: ${what} failed (see above)`);
    process.exit(1);
  }
}

export async function runWranglerDev(o) {
  const { synthGGUF } = await tsImport("../weights-tools/fixtures.ts", import.meta.url);
  const model = resolve(o.model ?? (await synthGGUF(o.preset, "q4_0")));
  if (statSync(model).size > PUT_MAX) {
    console.error(`shards-dev: ${model} is over wrangler's ${PUT_MAX / 2 ** 20} MiB local put; run without --wrangler (Miniflare, multipart upload)`);
    process.exit(1);
  }
  const state = join(root, ".wrangler", "shards-dev");
  const out = join(state, "configs");
  const plan = spawnSync(
    process.execPath,
    [join(root, "bin", "edgelm.mjs"), "shard-plan", "--model", model, "--budget-mb", o["budget-mb"], "--context", o.context, "--sequences", String(o.sequences), "--out", out],
    { stdio: "inherit", env },
  );
  must(plan, "edgelm shard-plan");
  const configs = readdirSync(out).filter((f) => /^wrangler\..*\.toml$/.test(f));
  const coordinator = join(out, "wrangler.coordinator.toml");
  const shards = configs.filter((f) => f.startsWith("wrangler.shard-")).sort((a, b) => Number(a.match(/\d+/)[0]) - Number(b.match(/\d+/)[0]));
  const planned = JSON.parse(readFileSync(join(out, "plan.json"), "utf8"));
  const key = planned.model.key;
  // The GGUF, its plan and the embedding's row hashes, where the coordinator and shards look for them.
  for (const [object, file] of [[key, model], [`${key}.plan.json`, join(out, "plan.json")], [planned.embedding.hashes.key, join(out, "embedding.hashes")]]) {
    must(spawnSync(process.execPath, [wrangler, "r2", "object", "put", `edgelm-models/${object}`, "--file", file, "--local", "--persist-to", state, "-c", coordinator], { stdio: "inherit", env }), "wrangler r2 object put");
  }
  const args = [wrangler, "dev", "-c", coordinator, ...shards.flatMap((f) => ["-c", join(out, f)]), "--ip", "127.0.0.1", "--port", String(o.port), "--persist-to", state, "--show-interactive-dev-session=false", "--var", `SHARD_TRANSPORT:${o.transport}`, "--var", "CPU_BUDGET_MS:0"];
  console.log(`shards-dev: wrangler dev with ${shards.length} shard configs from ${out}`);
  const child = spawn(process.execPath, args, { stdio: "inherit", env });
  const stop = () => child.kill("SIGINT");
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  await new Promise((r) => child.once("exit", r));
}
