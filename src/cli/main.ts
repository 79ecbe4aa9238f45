import { UsageError } from "./args";
import { commands } from "./commands/index";

const USAGE = `edgelm — Stable LM 2 1.6B at the edge

Usage: edgelm <command> [options]     (each command has --help)

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`)
  .join("\n")}
`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`edgelm: unknown command "${name}" (try edgelm --help)\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`edgelm ${err.message}\n`);
      return 2;
    }
    const e = err as Error & { code?: string };
    // Expected failures (bad files, bad formats) are one line; a stack only with EDGELM_DEBUG.
    process.stderr.write(`edgelm ${name}: ${e.message}\n`);
    if (process.env.EDGELM_DEBUG) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
