/**
 * What `edgelm shard-plan --out` writes is what wrangler deploys: the coordinator's config and a
 * shard's config go through `wrangler deploy --dry-run` (wrangler's own config validation and
 * bundling, no account needed), and the bundles carry the kernels as wasm modules. Every shard
 * config has the same shape, so one of them stands for all. (Running them together under
 * `wrangler dev -c … -c …` works too — docs/sharding.md — but is left out of CI: seven isolates in
 * one workerd can livelock on 2 cores, and wrangler offers no V8 flags to prevent it.)
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { synthGGUF } from "../../weights-tools/fixtures";
import { runNode as run, WRANGLER as wrangler } from "./node-run";

const dir = mkdtempSync(join(tmpdir(), "edgelm-deploy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("edgelm shard-plan --out → wrangler deploy --dry-run", () => {
  it("the coordinator's and a shard's configs validate and bundle, with the kernels as wasm modules", async () => {
    const model = await synthGGUF("tiny", "q4_0");
    const plan = run("bin/edgelm.mjs", ["shard-plan", "--model", model, "--budget-mb", "19", "--context", "512", "--out", join(dir, "shards")]);
    expect(plan.code, plan.out).toBe(0);
    expect(readdirSync(join(dir, "shards")).sort()).toEqual(["deploy.sh", "embedding.hashes", "plan.json", ...Array.from({ length: 7 }, (_, i) => `wrangler.shard-${i}.toml`), "wrangler.coordinator.toml"].sort());
    // The row hashes are the object plan.json names and hashes, and deploy.sh uploads them there.
    const written = JSON.parse(readFileSync(join(dir, "shards", "plan.json"), "utf8"));
    expect(createHash("sha256").update(readFileSync(join(dir, "shards", "embedding.hashes"))).digest("hex")).toBe(written.embedding.hashes.sha256);
    expect(readFileSync(join(dir, "shards", "deploy.sh"), "utf8")).toContain(`r2 object put "edgelm-models/${written.embedding.hashes.key}" --file embedding.hashes`);

    for (const [config, main] of [
      ["wrangler.coordinator.toml", "ENGINE"],
      ["wrangler.shard-3.toml", "SHARD_INDEX"],
    ] as const) {
      const out = join(dir, `out-${config}`);
      const r = run(wrangler, ["deploy", "--dry-run", "--config", join(dir, "shards", config), "--outdir", out]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain("--dry-run: exiting now.");
      // The vars and bindings wrangler read back from the config.
      expect(r.out).toContain(`env.${main}`);
      expect(r.out).toMatch(/MODELS \(edgelm-models\)/);
      expect(existsSync(join(out, "worker.js"))).toBe(true);
      // The four plain kernel builds; the shared-memory ones are Node's (workerd has no threads).
      expect(readdirSync(out).filter((f) => f.endsWith(".wasm"))).toHaveLength(4);
    }
    const coordinator = readFileSync(join(dir, "shards", "wrangler.coordinator.toml"), "utf8");
    expect(coordinator.match(/script_name = "edgelm-shard-\d"/g)).toHaveLength(7);
  });
});
