/**
 * JSON numbers written one byte at a time under `integer`, `minimum` and `maximum`: a byte is
 * allowed only when some way of finishing the number lands in the range, so a number never ends up
 * stranded outside it. With a bound, no exponent is written (the range test stays exact).
 */
import { LIMITS } from "./grammar";

export interface NumberSpec {
  integer: boolean;
  min: number;
  max: number;
}

interface Parts {
  neg: boolean;
  int: string;
  dot: boolean;
  frac: string;
  exp: boolean;
  expSign: boolean;
  expDigits: string;
}

/** Splits a prefix of a JSON number; undefined when it is not one. */
function parts(s: string): Parts | undefined {
  const m = /^(-?)(0|[1-9][0-9]*)?(?:(\.)([0-9]*))?(?:([eE])([+-]?)([0-9]*))?$/.exec(s);
  if (!m) return undefined;
  const p: Parts = { neg: m[1] === "-", int: m[2] ?? "", dot: m[3] === ".", frac: m[4] ?? "", exp: m[5] !== undefined, expSign: (m[6] ?? "") !== "", expDigits: m[7] ?? "" };
  if ((p.dot || p.exp) && p.int === "") return undefined;
  if (p.exp && p.dot && p.frac === "") return undefined;
  return p;
}

const bounded = (n: NumberSpec) => n.min > -Infinity || n.max < Infinity;

/** Whether `s` is a prefix the spec allows: the shape, the digit limits, and a reachable value in range. */
export function numberPrefixOk(s: string, n: NumberSpec): boolean {
  const p = parts(s);
  if (!p) return false;
  if (p.int.length > LIMITS.intDigits || p.frac.length > LIMITS.fracDigits || p.expDigits.length > LIMITS.expDigits) return false;
  if (n.integer && (p.dot || p.exp)) return false;
  if (p.exp && bounded(n)) return false;
  if (p.exp) return true;
  return reachable(p, n);
}

/** Whether `s` is a whole number the spec accepts. */
export function numberComplete(s: string, n: NumberSpec): boolean {
  const p = parts(s);
  if (!p || p.int === "" || (p.dot && p.frac === "") || (p.exp && p.expDigits === "")) return false;
  if (!numberPrefixOk(s, n)) return false;
  const v = Number(s);
  return v >= n.min && v <= n.max;
}

/** Does some completion of the prefix (no exponent) lie in [min, max]? */
function reachable(p: Parts, n: NumberSpec): boolean {
  const sign = p.neg ? -1 : 1;
  // Magnitude intervals the finished number can fall in, as [lo, hi].
  const spans: [number, number][] = [];
  const maxInt = 10 ** LIMITS.intDigits;
  if (p.int === "") spans.push([0, maxInt]);
  else if (p.dot) {
    const base = Number(`${p.int}.${p.frac || "0"}`);
    spans.push([base, p.frac.length < LIMITS.fracDigits ? base + 10 ** -p.frac.length : base]);
  } else if (p.int === "0") spans.push([0, n.integer ? 0 : 1]);
  else {
    const d = Number(p.int);
    for (let extra = 0; p.int.length + extra <= LIMITS.intDigits; extra++) {
      const scale = 10 ** extra;
      spans.push([d * scale, n.integer ? (d + 1) * scale - 1 : (d + 1) * scale]);
    }
  }
  for (const [lo, hi] of spans) {
    const a = sign > 0 ? lo : -hi;
    const b = sign > 0 ? hi : -lo;
    let from = Math.max(a, n.min);
    const to = Math.min(b, n.max);
    if (n.integer) from = Math.ceil(from);
    if (from <= to) return true;
  }
  return false;
}
