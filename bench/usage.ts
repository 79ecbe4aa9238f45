/**
 * `--help` (or `-h`) for the bench scripts: prints the usage and exits
 * before the script loads a model or times anything, and before a strict
 * parseArgs could reject the flag.
 */
export function exitOnHelp(usage: string): void {
  if (!process.argv.slice(2).some((a) => a === "--help" || a === "-h")) return;
  console.log(usage);
  process.exit(0);
}
