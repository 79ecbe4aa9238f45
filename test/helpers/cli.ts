/** The CLI as a user runs it: `node bin/edgelm.mjs …` in a child process. */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";

export interface CliRun {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

/**
 * Spawns the CLI asynchronously: the servers the tests talk to live in the test's own process, so
 * a blocking spawnSync would deadlock. EDGELM_API_KEY is cleared unless `env` sets it, so the
 * developer's own key never leaks into a test's requests.
 */
export function spawnEdgelm(args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, ["bin/edgelm.mjs", ...args], { env: { ...process.env, EDGELM_API_KEY: "", ...env } });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}
