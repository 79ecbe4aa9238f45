/** Runs a Node script of this repository (the edgelm CLI, wrangler) the way a user would, for tests of what they print and write. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const env = { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" };

/** wrangler's own entry point, as `npx wrangler` would run it. */
export const WRANGLER = join(process.cwd(), "node_modules", "wrangler", "bin", "wrangler.js");

export function runNode(cmd: string, args: string[]): { code: number | null; stdout: string; out: string } {
  const r = spawnSync(process.execPath, [cmd, ...args], { encoding: "utf8", timeout: 120_000, env, maxBuffer: 16 << 20 });
  return { code: r.status, stdout: r.stdout, out: `${r.stdout}\n${r.stderr}` };
}
