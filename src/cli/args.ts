import { parseArgs, type ParseArgsConfig } from "node:util";

/** A mistake in how the command was called: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface CommandSpec<O extends OptionSpec> {
  name: string;
  summary: string;
  usage: string;
  /** Extra help text: what each option means. */
  details: string;
  options: O;
}

/**
 * Parses `argv` strictly (unknown flags and stray positionals are usage errors).
 * Returns null when `--help` was asked for, after printing the help.
 */
export function parseCommand<O extends OptionSpec>(spec: CommandSpec<O>, argv: string[]) {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText(spec));
    return null;
  }
  try {
    const { values } = parseArgs({ args: argv, options: spec.options, strict: true, allowPositionals: false });
    return values;
  } catch (err) {
    throw new UsageError(`${spec.name}: ${(err as Error).message.split("\n")[0]} (see --help)`);
  }
}

export function helpText(spec: CommandSpec<OptionSpec>): string {
  return `${spec.summary}\n\nUsage: edgelm ${spec.usage}\n\n${spec.details.trim()}\n`;
}

export function required(cmd: string, value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new UsageError(`${cmd}: --${flag} is required (see --help)`);
  return value;
}

export function intOption(cmd: string, value: string | undefined, flag: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return def;
  if (!/^-?\d+$/.test(value)) throw new UsageError(`${cmd}: --${flag} must be an integer, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${cmd}: --${flag} must be in ${min}..${max}, got ${n}`);
  return n;
}

export function floatOption(cmd: string, value: string | undefined, flag: string, def: number, min = -Infinity, max = Infinity): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${cmd}: --${flag} must be a number, got "${value}"`);
  if (n < min || n > max) throw new UsageError(`${cmd}: --${flag} must be in ${min}..${max}, got ${n}`);
  return n;
}

/** "1,2,3" → [1,2,3]; token ids are non-negative integers. */
export function tokenList(cmd: string, value: string, flag = "tokens"): number[] {
  const parts = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.length === 0) throw new UsageError(`${cmd}: --${flag} needs at least one token id`);
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new UsageError(`${cmd}: --${flag}: "${p}" is not a token id`);
    return Number(p);
  });
}
