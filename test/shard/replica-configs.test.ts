/**
 * `edgelm shard-plan --replicas N`: what it prints (replicas, batch, memory per replica and in
 * total), what it writes (a script per shard and replica, a binding for each in the coordinator,
 * SHARD_REPLICAS and MAX_BATCH), that wrangler takes the coordinator's and a replica shard's
 * config (`wrangler deploy --dry-run`), and that a deployment past the account's Durable Object
 * classes is refused before anything is written.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthGGUF } from "../../weights-tools/fixtures";
import { runNode as run, WRANGLER as wrangler } from "./node-run";

const dir = mkdtempSync(join(tmpdir(), "edgelm-replicas-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let model: string;
beforeAll(async () => {
  model = await synthGGUF("tiny", "q4_0");
});

describe("edgelm shard-plan --replicas", () => {
  it("--help lists --replicas and --max-batch", () => {
    const r = run("bin/edgelm.mjs", ["shard-plan", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--replicas N\s+independent shard pipelines/);
    expect(r.out).toMatch(/--max-batch N\s+sequences one replica runs per batched step/);
  });

  it("prints replicas, batch, and memory per replica and in total; writes a script per shard and replica", () => {
    const out = join(dir, "two");
    const r = run("bin/edgelm.mjs", ["shard-plan", "--model", model, "--budget-mb", "19", "--context", "512", "--replicas", "2", "--max-batch", "4", "--out", out]);
    expect(r.code, r.out).toBe(0);
    // S shards of ~19 MiB planned each (the table above these lines), twice.
    const rowsOfTable = [...r.stdout.matchAll(/^edgelm-shard-\d+ .* ([\d.]+)$/gm)];
    const S = rowsOfTable.length;
    expect(S).toBeGreaterThan(2);
    const perReplica = rowsOfTable.reduce((a, m) => a + Number(m[1]), 0);
    const line = new RegExp(`replicas: 2 independent pipeline\\(s\\) \\(SHARD_REPLICAS\\), each ${S} isolates: ([\\d.]+) MiB planned, ([\\d.]+) MiB of budgets; all replicas ${2 * S} isolates: ([\\d.]+) MiB planned, ([\\d.]+) MiB of budgets; ${2 * S + 1} Workers and ${2 * S} Durable Object classes`).exec(r.stdout);
    expect(line, r.stdout).not.toBeNull();
    const [planned, budgets, total, totalBudgets] = line!.slice(1).map(Number);
    expect(planned).toBeCloseTo(perReplica, 0);
    expect(budgets).toBe(S * 19);
    expect(total).toBeCloseTo(2 * planned, 0);
    expect(totalBudgets).toBe(2 * S * 19);
    expect(r.stdout).toContain("batch: up to 4 sequence(s) per step in each replica (MAX_BATCH); each shard holds KV for 1 full-context sequence(s) of 512 positions.");
    expect(r.stdout).toContain("note: a batch of 4 sequences at full context needs --sequences 4");

    const shardFiles = Array.from({ length: S }, (_, i) => [`wrangler.shard-${i}.toml`, `wrangler.shard-${i}-r1.toml`]).flat();
    expect(readdirSync(out).sort()).toEqual(["deploy.sh", "embedding.hashes", "plan.json", "wrangler.coordinator.toml", ...shardFiles].sort());
    const coordinator = readFileSync(join(out, "wrangler.coordinator.toml"), "utf8");
    for (let i = 0; i < S; i++) {
      expect(coordinator).toContain(`name = "SHARD_${i}"\nclass_name = "Shard"\nscript_name = "edgelm-shard-${i}"\n`);
      expect(coordinator).toContain(`name = "SHARD_${i}_R1"\nclass_name = "Shard"\nscript_name = "edgelm-shard-${i}-r1"\n`);
      const replica = readFileSync(join(out, `wrangler.shard-${i}-r1.toml`), "utf8");
      expect(replica).toContain(`name = "edgelm-shard-${i}-r1"`);
      expect(replica).toContain(`SHARD_INDEX = "${i}"`);
    }
    expect(coordinator).toContain(`SHARD_REPLICAS = "2"`);
    expect(coordinator).toContain(`MAX_BATCH = "4"`);
    // Every shard script of both replicas is deployed before the coordinator that binds to them.
    const deploys = readFileSync(join(out, "deploy.sh"), "utf8").split("\n").filter((l) => l.startsWith("npx wrangler deploy"));
    expect(deploys).toHaveLength(2 * S + 1);
    expect(deploys.at(-1)).toBe("npx wrangler deploy --config wrangler.coordinator.toml");
    expect(deploys.filter((l) => l.includes("-r1.toml"))).toHaveLength(S);

    for (const [config, main] of [
      ["wrangler.coordinator.toml", "SHARD_REPLICAS"],
      ["wrangler.shard-2-r1.toml", "SHARD_INDEX"],
    ] as const) {
      const bundle = join(dir, `out-${config}`);
      const w = run(wrangler, ["deploy", "--dry-run", "--config", join(out, config), "--outdir", bundle]);
      expect(w.code, w.out).toBe(0);
      expect(w.out).toContain(`env.${main}`);
      expect(existsSync(join(bundle, "worker.js"))).toBe(true);
    }
  }, 180_000);

  it("--max-batch defaults to the head shards' logits batch (4), or --sequences when larger; one replica writes no replica scripts", () => {
    const out = join(dir, "one");
    const r = run("bin/edgelm.mjs", ["shard-plan", "--model", model, "--budget-mb", "19", "--context", "512", "--sequences", "2", "--out", out]);
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain("replicas: 1 independent pipeline(s)");
    expect(r.stdout).toContain("batch: up to 4 sequence(s) per step in each replica");
    expect(r.stdout).toContain("note: a batch of 4 sequences at full context needs --sequences 4; with 2, only shorter sequences share the KV.");
    expect(readFileSync(join(out, "wrangler.coordinator.toml"), "utf8")).toContain(`MAX_BATCH = "4"`);
    const more = run("bin/edgelm.mjs", ["shard-plan", "--model", model, "--budget-mb", "19", "--context", "128", "--sequences", "6"]);
    expect(more.code, more.out).toBe(0);
    expect(more.stdout).toContain("batch: up to 6 sequence(s) per step in each replica");
    expect(more.stdout).not.toContain("note:");
    expect(readdirSync(out).filter((f) => f.includes("-r"))).toEqual([]);
    expect(readFileSync(join(out, "wrangler.coordinator.toml"), "utf8")).toContain(`SHARD_REPLICAS = "1"`);
  });

  it("refuses more Durable Object classes than an account may have, and a replica count that is not a positive integer, before writing", () => {
    const one = run("bin/edgelm.mjs", ["shard-plan", "--model", model, "--budget-mb", "19", "--context", "512", "--out", join(dir, "one")]);
    expect(one.code, one.out).toBe(0);
    const S = [...one.stdout.matchAll(/^edgelm-shard-\d+ /gm)].length;
    // The fewest replicas whose scripts pass 500, and the most that stay within it with the coordinator.
    const over = Math.floor(500 / S) + 1;
    const out = join(dir, "refused");
    const many = run("bin/edgelm.mjs", ["shard-plan", "--model", model, "--budget-mb", "19", "--context", "512", "--replicas", String(over), "--out", out]);
    expect(many.code).toBe(2);
    expect(many.out).toContain(
      `${over} replicas of ${S} shards are ${over * S} Workers with a Durable Object class each, and the coordinator one more Worker; an account may have 500 of each on the Workers Paid plan: use at most ${Math.floor(499 / S)} replicas`,
    );
    expect(existsSync(out)).toBe(false);
    const zero = run("bin/edgelm.mjs", ["shard-plan", "--model", model, "--replicas", "0"]);
    expect(zero.code).toBe(2);
    expect(zero.out).toContain("--replicas must be in 1..500, got 0");
  });
});
