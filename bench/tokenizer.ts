/**
 * Encode throughput on English text, ours vs the tiktoken WASM peer (same ranks, same Arcade split),
 * in one run so machine noise hits both. Corpus: the package READMEs/licences in node_modules.
 *   npx tsx bench/tokenizer.ts [--mb 2]
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Tiktoken } from "tiktoken/lite";
import cl100k from "tiktoken/encoders/cl100k_base.json" with { type: "json" };
import { ARCADE_PATTERN_ORIGINAL, ARCADE_SPECIAL_START, ARCADE_SPECIAL_TOKENS, Tokenizer } from "../src/tokenizer/node";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: npx tsx bench/tokenizer.ts [--mb 2]");

const mbArg = process.argv.indexOf("--mb");
const targetBytes = (mbArg > 0 ? Number(process.argv[mbArg + 1]) : 2) * 1e6;

function corpus(): string {
  const files: string[] = [];
  const walk = (dir: string, depth: number) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory() && depth < 3) walk(p, depth + 1);
      else if (st.isFile() && /^(readme|license|licence)(\.md)?$/i.test(name)) files.push(p);
    }
  };
  walk("node_modules", 0);
  let text = "";
  for (const f of files) {
    text += readFileSync(f, "utf8") + "\n";
    if (text.length >= targetBytes) break;
  }
  return text;
}

function measure(name: string, fn: () => number, bytes: number): number {
  fn(); // warm-up: JIT, caches
  let best = Infinity;
  let tokens = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    tokens = fn();
    best = Math.min(best, performance.now() - t0);
  }
  const mbs = bytes / 1e6 / (best / 1e3);
  console.log(`${name.padEnd(22)} ${mbs.toFixed(2).padStart(7)} MB/s   (${best.toFixed(0)} ms, ${tokens} tokens)`);
  return mbs;
}

const text = corpus();
const bytes = new TextEncoder().encode(text).length;
console.log(`corpus: ${(bytes / 1e6).toFixed(2)} MB of README/licence text, one core`);

const t0 = performance.now();
const ours = Tokenizer.arcade100k();
console.log(`built-in tokenizer load: ${(performance.now() - t0).toFixed(0)} ms`);
const specials: Record<string, number> = {};
ARCADE_SPECIAL_TOKENS.forEach((s, i) => (specials[s] = ARCADE_SPECIAL_START + i));
const peer = new Tiktoken(cl100k.bpe_ranks, specials, ARCADE_PATTERN_ORIGINAL);

const a = ours.encode(text);
const b = peer.encode_ordinary(text);
const same = a.length === b.length && a.every((v, i) => v === b[i]);
console.log(`same ids as tiktoken: ${same}`);

// Ours memoises pre-tokens; "cold" empties that cache before every round, "warm" keeps it.
const oursMBs = measure("edgelm (TS), cold", () => {
  ours.clearCache();
  return ours.encode(text).length;
}, bytes);
measure("edgelm (TS), warm", () => ours.encode(text).length, bytes);
const peerMBs = measure("tiktoken 1.0.22 (WASM)", () => peer.encode_ordinary(text).length, bytes);
console.log(`ratio ours (cold) / tiktoken: ${(oursMBs / peerMBs).toFixed(2)}`);

measure("edgelm decode", () => (ours.decode(a), a.length), bytes);

console.log("pathological inputs (1 MB each, ours):");
const cases: [string, string][] = [
  ["one letter x1M", "a".repeat(1_000_000)],
  ["spaces x1M", " ".repeat(1_000_000)],
  ["newlines x1M", "\n".repeat(1_000_000)],
  ["word without spaces", Array.from({ length: 200_000 }, (_, i) => "abcdefghijklmnopqrstuvwxyz"[(i * 7) % 26]).join("").repeat(5)],
  ["combining marks", "e" + "\u0301".repeat(500_000)],
  ["punctuation x1M", "!".repeat(1_000_000)],
  ["digits x1M", "7".repeat(1_000_000)],
];
for (const [name, s] of cases) {
  const t = performance.now();
  const n = ours.encode(s).length;
  console.log(`  ${name.padEnd(22)} ${(performance.now() - t).toFixed(0).padStart(6)} ms  ${n} tokens`);
}
peer.free();
