/**
 * The integer dot instructions the kernels can use, probed on each host: whether each one computes
 * what the spec defines (on operands in their defined range, with a non-zero accumulator), and how
 * fast a tight loop of it runs on 4 KiB vectors in L1. Not a test: timings are for docs/kernels.md.
 *
 *   node --import tsx bench/dot-probe.ts [--hosts node,workerd] [--v8-flags "--no-liftoff ..."]
 *        [--memory imported|internal] [--cold] [--reps N] [--check-only] [--json]
 *
 * Node runs the loops in a child process (so --v8-flags reach its V8); workerd runs them in a
 * Worker of the bare binary (node_modules' workerd, as test/worker/bare-workerd.ts starts it),
 * timed from outside the process, because a Worker's clock does not advance while it computes:
 * each figure is R repetitions' MACs / (best of 5 runs of 2R repetitions − best of 5 runs of R); one
 * repetition is 8192 multiply-adds (16-product kinds) or 4096 (dot16); R = 500000 by default.
 * Before timing, each loop is called 60 times on one repetition so V8 tiers it up to TurboFan;
 * --cold instead times each loop's first call in the process (what a kernel called once for a
 * long time gets: Liftoff code). --memory internal gives the loops a memory of their own instead of an
 * imported one with a 4 GiB maximum (the engine's).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import binaryen from "binaryen";
import { freePort } from "../test/helpers/ports";
import { wranglerCompat } from "../test/worker/bundle";
import { root } from "./common";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --import tsx bench/dot-probe.ts [--hosts node,workerd] [--v8-flags \"--no-liftoff ...\"] [--memory imported|internal] [--cold] [--reps N] [--check-only] [--json]");

interface Args {
  hosts: string[];
  v8Flags: string[];
  memory: "imported" | "internal";
  cold: boolean;
  reps: number;
  json: boolean;
  child: boolean;
  checkOnly: boolean;
}

function parse(argv: string[]): Args {
  const a: Args = { hosts: ["node", "workerd"], v8Flags: [], memory: "imported", cold: false, reps: 500000, json: false, child: false, checkOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === "--hosts") a.hosts = argv[++i].split(",");
    else if (v === "--v8-flags") a.v8Flags = argv[++i].split(/\s+/).filter(Boolean);
    else if (v === "--memory") a.memory = argv[++i] as Args["memory"];
    else if (v === "--cold") a.cold = true;
    else if (v === "--reps") a.reps = Number(argv[++i]);
    else if (v === "--json") a.json = true;
    else if (v === "--child") a.child = true;
    else if (v === "--check-only") a.checkOnly = true;
    else throw new Error(`dot-probe: unknown argument ${v}`);
  }
  return a;
}

// ------------------------------------------------------------------ the loops

/** One instruction (or the two-instruction form the kernels use) per kind; MACs per operation. */
const KINDS = {
  // i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, acc): 16 products, summed by fours into the accumulator.
  fused: { macs: 16, op: (a: string, b: string, acc: string) => `(i32x4.relaxed_dot_i8x16_i7x16_add_s ${a} ${b} ${acc})` },
  // i16x8.relaxed_dot_i8x16_i7x16_s + i16x8.add: the relaxed Q4_0 matmul's int16 accumulation.
  relaxed16: { macs: 16, op: (a: string, b: string, acc: string) => `(i16x8.add ${acc} (i16x8.relaxed_dot_i8x16_i7x16_s ${a} ${b}))` },
  // ... widened to int32 after each step (extadd_pairwise): what a kernel needing int32 sums pays.
  relaxed32: { macs: 16, op: (a: string, b: string, acc: string) => `(i32x4.add ${acc} (i32x4.extadd_pairwise_i16x8_s (i16x8.relaxed_dot_i8x16_i7x16_s ${a} ${b})))` },
  // i32x4.dot_i16x8_s + i32x4.add on int16 operands: the plain-SIMD build's dot (8 products).
  dot16: { macs: 8, op: (a: string, b: string, acc: string) => `(i32x4.add ${acc} (i32x4.dot_i16x8_s ${a} ${b}))` },
  // No product: i32x4.add of the loaded vectors, so loads (and any bounds checks on them) are a
  // larger share of the loop; "G MAC/s" counts one per add.
  load: { macs: 1, op: (a: string, _b: string, acc: string) => `(i32x4.add ${acc} ${a})` },
} as const;
type Kind = keyof typeof KINDS;
const KIND_NAMES = Object.keys(KINDS) as Kind[];

const VEC_BYTES = 4096;

/**
 * `run(reps)`: reps × (4 KiB of a against two b vectors held in registers), 8 independent
 * accumulators (so neither the dot's latency nor the loads bound the loop), returns a checksum.
 */
function loopWat(kind: Kind, memory: Args["memory"]): string {
  const { op } = KINDS[kind];
  const accs = Array.from({ length: 8 }, (_, i) => `$s${i}`);
  const body: string[] = [];
  for (let j = 0; j < 4; j++) body.push(`(local.set $a${j} (v128.load offset=${16 * j} (local.get $i)))`);
  for (let j = 0; j < 8; j++) body.push(`(local.set ${accs[j]} ${op(`(local.get $a${j >> 1})`, `(local.get $b${j & 1})`, `(local.get ${accs[j]})`)})`);
  const mem = memory === "imported" ? `(import "env" "memory" (memory 1 65536))` : `(memory (export "memory") 1)`;
  const sum = accs.slice(1).reduce((e, s) => `(i32x4.add ${e} (local.get ${s}))`, `(local.get ${accs[0]})`);
  return `(module ${mem}
 (func (export "run") (param $reps i32) (result i32)
  (local $i i32) ${accs.map((s) => `(local ${s} v128)`).join(" ")}
  (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $b0 v128) (local $b1 v128) (local $t v128)
  (local.set $b0 (v128.load offset=${VEC_BYTES} (i32.const 0)))
  (local.set $b1 (v128.load offset=${VEC_BYTES + 16} (i32.const 0)))
  (block $done
   (br_if $done (i32.le_s (local.get $reps) (i32.const 0)))
   (loop $outer
    (local.set $i (i32.const 0))
    (loop $inner
     ${body.join("\n     ")}
     (local.set $i (i32.add (local.get $i) (i32.const 64)))
     (br_if $inner (i32.lt_u (local.get $i) (i32.const ${VEC_BYTES}))))
    (local.set $reps (i32.sub (local.get $reps) (i32.const 1)))
    (br_if $outer (i32.gt_s (local.get $reps) (i32.const 0)))))
  (local.set $t ${sum})
  (i32.add (i32.add (i32x4.extract_lane 0 (local.get $t)) (i32x4.extract_lane 1 (local.get $t)))
           (i32.add (i32x4.extract_lane 2 (local.get $t)) (i32x4.extract_lane 3 (local.get $t))))))`;
}

/** One operation per call on vectors in memory: `op(a, b, acc, out)` stores op(a, b, acc) at out. */
function opsWat(memory: Args["memory"]): string {
  const mem = memory === "imported" ? `(import "env" "memory" (memory 1 65536))` : `(memory (export "memory") 1)`;
  const fns = KIND_NAMES.map(
    (k) => `(func (export "${k}") (param $a i32) (param $b i32) (param $c i32) (param $o i32)
    (v128.store (local.get $o) ${KINDS[k].op("(v128.load (local.get $a))", "(v128.load (local.get $b))", "(v128.load (local.get $c))")}))`,
  );
  return `(module ${mem}\n ${fns.join("\n ")})`;
}

function wasmBytes(wat: string): Uint8Array {
  const m = binaryen.parseText(wat);
  m.setFeatures(binaryen.Features.All);
  if (!m.validate()) throw new Error("dot-probe: invalid module");
  const bytes = m.emitBinary();
  m.dispose();
  return bytes;
}

// ------------------------------------------------------------------ the probe, shared by both hosts

/**
 * Plain JavaScript, so that the Node child and the Worker run the same text: correctness cases,
 * the per-instruction reference, and one timed run. `modules` maps "ops" and each kind to a
 * WebAssembly.Module.
 */
const CORE = String.raw`
const KINDS = ${JSON.stringify(Object.fromEntries(KIND_NAMES.map((k) => [k, KINDS[k].macs])))};
export function makeProbe(modules, imported) {
  const memory = imported ? new WebAssembly.Memory({ initial: 1, maximum: 65536 }) : undefined;
  const inst = (m) => new WebAssembly.Instance(m, imported ? { env: { memory } } : {}).exports;
  const ops = inst(modules.ops);
  const loops = {};
  const loop = (k) => (loops[k] ??= inst(modules[k]));
  const mem = () => (imported ? memory : ops.memory).buffer;
  let seed = 12345;
  const rnd = (n) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const i8 = (v) => ((v & 255) << 24) >> 24;

  function reference(kind, a, b, c) {
    const out = new Int32Array(4), o16 = new Int16Array(8);
    if (kind === "fused") { for (let l = 0; l < 4; l++) { let s = c[l]; for (let j = 0; j < 4; j++) s += a[4 * l + j] * b[4 * l + j]; out[l] = s; } return out; }
    if (kind === "relaxed16") { const cc = new Int16Array(c.buffer); for (let l = 0; l < 8; l++) o16[l] = cc[l] + a[2 * l] * b[2 * l] + a[2 * l + 1] * b[2 * l + 1]; return new Int32Array(o16.buffer); }
    if (kind === "relaxed32") { for (let l = 0; l < 4; l++) { let s = c[l]; for (let j = 0; j < 4; j++) s += a[4 * l + j] * b[4 * l + j]; out[l] = s; } return out; }
    if (kind === "load") { for (let l = 0; l < 4; l++) out[l] = c[l] + new Int32Array(a.buffer)[l]; return out; }
    const a16 = new Int16Array(a.buffer), b16 = new Int16Array(b.buffer);
    for (let l = 0; l < 4; l++) out[l] = c[l] + a16[2 * l] * b16[2 * l] + a16[2 * l + 1] * b16[2 * l + 1];
    return out;
  }

  /** Cases in the defined range (b in 0..127) with the extremes and non-zero accumulators. */
  function cases() {
    const list = [];
    const mk = (fa, fb, fc) => {
      const a = new Int8Array(16), b = new Int8Array(16), c = new Int32Array(4);
      for (let j = 0; j < 16; j++) { a[j] = fa(j); b[j] = fb(j); }
      for (let l = 0; l < 4; l++) c[l] = fc(l);
      list.push({ a, b, c });
    };
    mk(() => -128, () => 127, (l) => [1000, -1, 1 << 30, -(2 ** 31) + 5][l]);
    mk(() => 127, () => 127, (l) => [7, -7, 123456, -123456][l]);
    mk((j) => (j & 1 ? -128 : 127), (j) => (j & 2 ? 0 : 127), (l) => l * 1000 - 1500);
    mk(() => 0, () => 0, (l) => l + 1);
    for (let n = 0; n < 200; n++) mk(() => i8(rnd(256)), () => rnd(128), () => (rnd(65536) - 32768) * (n % 3 ? 1 : 0));
    return list;
  }

  function check(kind) {
    const buf = mem();
    const A = 1024, B = 1040, C = 1056, O = 1072;
    let bad = 0, first = "";
    for (const t of cases()) {
      new Int8Array(buf, A, 16).set(t.a); new Int8Array(buf, B, 16).set(t.b); new Int32Array(buf, C, 4).set(t.c);
      // dot16 reads int16 operands: the same bytes viewed as int16 (b's high bytes stay 0..127).
      ops[kind](A, B, C, O);
      const got = new Int32Array(buf.slice(O, O + 16));
      const want = reference(kind, t.a, t.b, t.c);
      if (got.some((v, i) => v !== want[i])) { if (!bad) first = "a=[" + t.a + "] b=[" + t.b + "] acc=[" + t.c + "]: got [" + got + "], want [" + want + "]"; bad++; }
    }
    // What b >= 128 does (implementation-defined): signed, unsigned, or something else.
    const a = new Int8Array(16).fill(1), b = new Uint8Array(16).fill(200), c = new Int32Array(4);
    new Int8Array(buf, A, 16).set(a); new Uint8Array(buf, B, 16).set(b); new Int32Array(buf, C, 4).set(c);
    ops[kind](A, B, C, O);
    const lane = new Int32Array(buf.slice(O, O + 16))[0];
    const per = kind === "relaxed16" ? 2 : 4;
    let hi = kind === "dot16" || kind === "load" ? "n/a" : (lane & 0xffff) === ((per * 200) & 0xffff) ? "unsigned" : (lane & 0xffff) === ((per * -56) & 0xffff) ? "signed" : "other (" + lane + ")";
    // 127 x 255, four times: a pair sum of 64770 saturates where the host computes the products
    // with pmaddubsw (two-step lowering) and not where it uses one VNNI vpdpbusd (4 x 127 x 255).
    if (kind === "fused" || kind === "relaxed32") {
      new Int8Array(buf, A, 16).fill(127); new Uint8Array(buf, B, 16).fill(255);
      ops[kind](A, B, C, O);
      const v = new Int32Array(buf.slice(O, O + 16))[0];
      hi += v === 4 * 127 * 255 ? "; no saturation (one VNNI dot)" : v === 2 * 32767 ? "; pair sums saturate (pmaddubsw)" : "; " + v;
    }
    return { kind, cases: cases().length, bad, first, b_high_bit: hi };
  }

  function prepare() {
    const buf = mem();
    const v = new Uint8Array(buf, 0, ${VEC_BYTES + 32});
    for (let i = 0; i < v.length; i++) v[i] = rnd(128);
  }

  return {
    // First calls (V8 runs a function's first calls in Liftoff, its baseline compiler), then again
    // after enough calls for dynamic tiering to have moved the ops to TurboFan.
    check: () => {
      const first = Object.keys(KINDS).map(check);
      for (let n = 0; n < 3000; n++) for (const k of Object.keys(KINDS)) ops[k](1024, 1040, 1056, 1072);
      return first;
    },
    recheck: () => Object.keys(KINDS).map(check),
    warm: (kind) => { prepare(); for (let i = 0; i < 60; i++) loop(kind).run(1); },
    run: (kind, reps) => { prepare(); return loop(kind).run(reps); },
  };
}
`;

const WORKER = String.raw`
import * as probeCore from "./core.js";
const modules = { ops: OPS, ${KIND_NAMES.map((k) => `${k}: ${k.toUpperCase()}`).join(", ")} };
let probe;
export default {
  async fetch(req) {
    const u = new URL(req.url);
    probe ??= probeCore.makeProbe(modules, IMPORTED);
    if (u.pathname === "/check") return Response.json(probe.check());
    if (u.pathname === "/recheck") return Response.json(probe.recheck());
    if (u.pathname === "/warm") { probe.warm(u.searchParams.get("k")); return new Response("ok"); }
    if (u.pathname === "/run") return new Response(String(probe.run(u.searchParams.get("k"), Number(u.searchParams.get("reps")))));
    return new Response("not found", { status: 404 });
  },
};
`;

// ------------------------------------------------------------------ hosts

interface Result {
  host: string;
  flags: string;
  kind: Kind;
  /** On the ops' first calls (Liftoff) and after they were tiered up (TurboFan). */
  correctFirst: string;
  correctWarm: string;
  bHighBit: string;
  gmacs: number;
}

interface Check {
  kind: Kind;
  bad: number;
  cases: number;
  first: string;
  b_high_bit: string;
}

interface Timer {
  /** The ops' first calls (Liftoff), then enough calls to tier them up. */
  check(): Promise<Check[]>;
  /** The same cases again (run after a pause: TurboFan code by then). */
  recheck(): Promise<Check[]>;
  warm(kind: Kind): Promise<void>;
  /** Seconds for one run of `reps` repetitions, timed where it can be. */
  time(kind: Kind, reps: number): Promise<number>;
  close(): Promise<void>;
}

async function measure(host: string, args: Args, t: Timer, macsPerRep: (k: Kind) => number): Promise<Result[]> {
  const first = await t.check();
  await new Promise((r) => setTimeout(r, 300)); // background TurboFan jobs finish
  const warm = await t.recheck();
  const out: Result[] = [];
  const verdict = (c: Check) => (c.bad ? `NO: ${c.bad}/${c.cases} wrong, e.g. ${c.first}` : `yes (${c.cases} cases)`);
  for (const kind of KIND_NAMES) {
    const c1 = first.find((x) => x.kind === kind)!;
    const c2 = warm.find((x) => x.kind === kind)!;
    let gmacs = NaN;
    if (args.checkOnly) {
      // correctness only
    } else if (args.cold) {
      // The first call of this loop's module in this process: nothing has run it before.
      const s = await t.time(kind, args.reps);
      const base = await t.time(kind, 0);
      gmacs = (macsPerRep(kind) * args.reps) / (s - base) / 1e9;
    } else {
      await t.warm(kind);
      await new Promise((r) => setTimeout(r, 200)); // background TurboFan jobs finish
      await t.warm(kind);
      let one = Infinity;
      let two = Infinity;
      for (let i = 0; i < 5; i++) {
        one = Math.min(one, await t.time(kind, args.reps));
        two = Math.min(two, await t.time(kind, 2 * args.reps));
      }
      gmacs = (macsPerRep(kind) * args.reps) / (two - one) / 1e9;
    }
    out.push({ host, flags: args.v8Flags.join(" ") || "(none)", kind, correctFirst: verdict(c1), correctWarm: verdict(c2), bHighBit: c2.b_high_bit, gmacs });
  }
  return out;
}

function modulesBytes(memory: Args["memory"]): Record<string, Uint8Array> {
  return { ops: wasmBytes(opsWat(memory)), ...Object.fromEntries(KIND_NAMES.map((k) => [k, wasmBytes(loopWat(k, memory))])) };
}

const macsPerRep = (k: Kind) => KINDS[k].macs * (VEC_BYTES / 16) * 2;

/** In this process (the child that got the flags on its command line). */
async function nodeTimer(args: Args): Promise<Timer> {
  setFlagsFromString("--experimental-wasm-relaxed-simd");
  const core = await import(`data:text/javascript,${encodeURIComponent(CORE)}`);
  const bytes = modulesBytes(args.memory);
  const modules = Object.fromEntries(Object.entries(bytes).map(([k, b]) => [k, new WebAssembly.Module(b as Uint8Array<ArrayBuffer>)]));
  const probe = core.makeProbe(modules, args.memory === "imported");
  return {
    check: async () => probe.check(),
    recheck: async () => probe.recheck(),
    warm: async (k) => probe.warm(k),
    time: async (k, reps) => {
      const t0 = performance.now();
      probe.run(k, reps);
      return (performance.now() - t0) / 1000;
    },
    close: async () => {},
  };
}

function workerdBinary(): string {
  const fromMiniflare = createRequire(createRequire(import.meta.url).resolve("miniflare"));
  return (fromMiniflare("workerd") as { default: string }).default;
}

async function workerdTimer(args: Args): Promise<Timer> {
  const dir = mkdtempSync(join(tmpdir(), "edgelm-dot-probe-"));
  const bytes = modulesBytes(args.memory);
  for (const [k, b] of Object.entries(bytes)) writeFileSync(join(dir, `${k}.wasm`), b);
  writeFileSync(join(dir, "core.js"), CORE);
  const imports = Object.keys(bytes).map((k) => `import ${k.toUpperCase()} from "./${k}.wasm";`).join("\n");
  writeFileSync(join(dir, "worker.js"), `${imports}\nconst IMPORTED = ${args.memory === "imported"};\n${WORKER}`);
  const s = JSON.stringify;
  const { compatibilityDate } = wranglerCompat();
  const port = await freePort();
  const modules = [`(name = "worker.js", esModule = embed "worker.js")`, `(name = "core.js", esModule = embed "core.js")`, ...Object.keys(bytes).map((k) => `(name = "${k}.wasm", wasm = embed "${k}.wasm")`)];
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = (modules = [${modules.join(", ")}], compatibilityDate = ${s(compatibilityDate)}))],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
  v8Flags = [${args.v8Flags.map((f) => s(f)).join(", ")}],
);
`,
  );
  let output = "";
  const child = spawn(workerdBinary(), ["serve", join(dir, "config.capnp")], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (output += String(d)));
  child.stderr.on("data", (d) => (output += String(d)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = `http://127.0.0.1:${port}`;
  const get = async (path: string) => {
    const res = await fetch(url + path);
    const body = await res.text();
    if (res.status !== 200) throw new Error(`workerd ${path}: HTTP ${res.status}: ${body}\n${output}`);
    return body;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}:\n${output}`);
    try {
      await fetch(url + "/nothing");
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`workerd did not listen within 30 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    check: async () => JSON.parse(await get("/check")),
    recheck: async () => JSON.parse(await get("/recheck")),
    warm: async (k) => void (await get(`/warm?k=${k}`)),
    time: async (k, reps) => {
      const t0 = performance.now();
      await get(`/run?k=${k}&reps=${reps}`);
      return (performance.now() - t0) / 1000;
    },
    close: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------ main

const args = parse(process.argv.slice(2));
if (args.child) {
  const t = await nodeTimer(args);
  console.log(JSON.stringify(await measure("node", args, t, macsPerRep)));
} else {
  const results: Result[] = [];
  for (const host of args.hosts) {
    if (host === "node") {
      // A child, so that --v8-flags are V8's own from the start (some are read only at start-up).
      const passOn = process.argv.slice(2).filter((v, i, all) => v !== "--hosts" && all[i - 1] !== "--hosts" && v !== "--json");
      const r = spawnSync(process.execPath, [...args.v8Flags, "--import", "tsx", join(root, "bench/dot-probe.ts"), "--child", ...passOn], { cwd: root, encoding: "utf8", maxBuffer: 16 << 20 });
      if (r.status !== 0) throw new Error(`the Node child failed:\n${r.stderr}`);
      results.push(...(JSON.parse(r.stdout.trim().split("\n").pop()!) as Result[]));
    } else if (host === "workerd") {
      const t = await workerdTimer(args);
      try {
        results.push(...(await measure("workerd", args, t, macsPerRep)));
      } finally {
        await t.close();
      }
    } else throw new Error(`dot-probe: unknown host ${host}`);
  }
  if (args.json) console.log(JSON.stringify(results));
  else {
    const versions = `Node ${process.version}; workerd ${spawnSync(workerdBinary(), ["--version"], { encoding: "utf8" }).stdout.trim()}`;
    console.log(`${versions}; memory ${args.memory}${args.cold ? "; cold first call" : "; warmed up"}; V8 flags: ${args.v8Flags.join(" ") || "(none)"}\n`);
    console.log("| host | instruction | correct, first calls | correct, after warm-up | b ≥ 128 read as (and how it is computed) | G MAC/s |\n|---|---|---|---|---|---|");
    for (const r of results) console.log(`| ${r.host} | ${r.kind} | ${r.correctFirst} | ${r.correctWarm} | ${r.bHighBit} | ${r.gmacs == null || Number.isNaN(r.gmacs) ? "—" : r.gmacs.toFixed(1)} |`);
  }
}
