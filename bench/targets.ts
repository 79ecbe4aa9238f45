/**
 * A bench's targets, judged from one run's numbers only: each says what it asks, what this run
 * measured (in words and numbers) and whether that meets it, so a reader never compares a table
 * against targets remembered from elsewhere.
 */

export interface Target {
  what: string;
  /** The measured side, in words and numbers. */
  measured: string;
  /** undefined: not measured in this run (measured says why). */
  pass?: boolean;
}

/** A figure with one decimal (or d), "—" where there is none. */
export const f = (x: number | undefined, d = 1) => (x !== undefined && Number.isFinite(x) ? x.toFixed(d) : "—");

/** a / b as "0.54×", "—" where either is missing. */
export const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && Number.isFinite(a / b) ? `${f(a / b, 2)}×` : "—");

/** The targets block: one line each, ✓ met, ✗ missed, — not measured in this run. */
export function targetLines(targets: readonly Target[]): string[] {
  return ["targets (this run's numbers):", ...targets.map((t) => `  ${t.pass === undefined ? "—" : t.pass ? "✓" : "✗"} ${t.what}: ${t.measured}`)];
}
