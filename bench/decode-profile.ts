/**
 * Where a decode step's time goes: every kernel call of one-token steps is
 * timed (the engine's kernel exports wrapped), and matrix-vector products are
 * attributed to their weight's role and kind (q, k, v, o, gate, up, down,
 * output; q4r, q4kr, q6r, ...). One thread. Not a test. With --batch B, each step is a batched
 * decode step of B sequences (one token each, all at the same position, as bench/batch-step.ts).
 * With --prefill P, each profiled step is instead a P-token prompt fed to an empty sequence (prefill).
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/decode-profile.ts [--model file.gguf]... [--context 128] [--steps 8] [--turns 2] [--batch 1] [--prefill P] [--build-dir build]
 *
 * Per call, per group, the best step over steps × turns is kept per group (sum of
 * the group's calls within one step), and the wall time of the whole step.
 */
import { parseArgs } from "node:util";
import { loadWasmEngine } from "../src/engine/node";
import type { WasmMatrix } from "../src/engine/load";
import { benchModel, promptedSequences, promptTokens } from "./common";

const { values: args } = parseArgs({
  options: {
    model: { type: "string", multiple: true },
    context: { type: "string", default: "128" },
    steps: { type: "string", default: "8" },
    turns: { type: "string", default: "2" },
    batch: { type: "string", default: "1" },
    prefill: { type: "string" },
    "build-dir": { type: "string" },
    help: { type: "boolean" },
  },
});
if (args.help) {
  console.log("usage: bench/decode-profile.ts [--model file.gguf]... [--context 128] [--steps 8] [--turns 2] [--batch 1] [--prefill P] [--build-dir build]");
  process.exit(0);
}
const ctx = Number(args.context), steps = Number(args.steps), turns = Number(args.turns), batch = Number(args.batch);
const prefill = args.prefill === undefined ? 0 : Number(args.prefill);
if (!(Number.isInteger(batch) && batch >= 1)) {
  console.error(`bench/decode-profile: --batch must be a positive integer, got ${args.batch}`);
  process.exit(2);
}
if ((args.prefill !== undefined && !(Number.isInteger(prefill) && prefill >= 1)) || (prefill > 0 && batch > 1)) {
  console.error(`bench/decode-profile: --prefill must be a positive integer, without --batch, got ${args.prefill}`);
  process.exit(2);
}
const models = args.model ?? [await benchModel()];

type Group = { ms: number; calls: number; weights: number; bytes: number };
const results = new Map<string, { best: Map<string, number>; step: number; info: Map<string, Group> }>();

for (let turn = 0; turn < turns; turn++) {
  for (const model of models) {
    const e = await loadWasmEngine(model, { force: "relaxed", relaxed: true, buildDir: args["build-dir"], threads: 1, maxBatch: batch, sequences: batch, contextLength: Math.max(prefill, ctx + steps + 1) });
    try {
      const eng = e as unknown as { k: Record<string, unknown>; weights: { layers: Record<string, unknown>[]; output?: WasmMatrix; embed?: WasmMatrix } };
      const byPtr = new Map<number, { role: string; m: WasmMatrix }>();
      eng.weights.layers.forEach((l) => {
        for (const [role, v] of Object.entries(l)) if (v && typeof v === "object" && "ptr" in v) byPtr.set((v as WasmMatrix).ptr, { role, m: v as WasmMatrix });
      });
      if (eng.weights.output) byPtr.set(eng.weights.output.ptr, { role: "output", m: eng.weights.output });
      const orig = eng.k;
      let acc = new Map<string, number>();
      const info = new Map<string, Group>();
      const wrapped: Record<string, unknown> = {};
      for (const [name, f] of Object.entries(orig)) {
        if (typeof f !== "function") {
          wrapped[name] = f;
          continue;
        }
        wrapped[name] = (...a: number[]) => {
          let key = name;
          const w = name.startsWith("matvec") || name.startsWith("matmul") ? byPtr.get(a[0]) : undefined;
          if (w) key = `${w.role}:${w.m.kind} ${w.m.rows}x${w.m.cols}`;
          const t0 = performance.now();
          const r = (f as (...x: number[]) => unknown)(...a);
          const dt = performance.now() - t0;
          acc.set(key, (acc.get(key) ?? 0) + dt);
          return r;
        };
      }
      eng.k = wrapped;
      // B sequences over one prompt (the later ones take its cached blocks).
      const seqs = prefill ? [e.newSequence()] : promptedSequences(e, ctx, batch);
      const r = results.get(model) ?? { best: new Map(), step: Infinity, info };
      results.set(model, r);
      for (let i = 0; i < steps; i++) {
        acc = new Map();
        const t0 = performance.now();
        if (prefill) e.forward(seqs[0], promptTokens(prefill), 0);
        else if (batch === 1) e.forward(seqs[0], [1000 + i], ctx + i);
        else e.forwardBatch(seqs.map((seq, j) => ({ seq, tokens: [1000 + i + j], startPos: ctx + i })));
        const dt = performance.now() - t0;
        r.step = Math.min(r.step, dt);
        for (const [k, v] of acc) r.best.set(k, Math.min(r.best.get(k) ?? Infinity, v));
      }
      // Sizes per group.
      for (const { role, m } of byPtr.values()) {
        const key = `${role}:${m.kind} ${m.rows}x${m.cols}`;
        const g = r.info.get(key) ?? { ms: 0, calls: 0, weights: 0, bytes: 0 };
        if (turn === 0) {
          g.calls++;
          g.weights += m.rows * m.cols;
        }
        r.info.set(key, g);
      }
    } finally {
      await e.close();
    }
  }
}

for (const [model, r] of results) {
  const what = prefill ? `a ${prefill}-token prompt from an empty sequence` : `context ${ctx}${batch > 1 ? `, ${batch} sequences a step` : ""}`;
  console.log(`\n${model}: best step ${r.step.toFixed(1)} ms (wall, one thread, ${what})`);
  const rows = [...r.best.entries()].sort((a, b) => b[1] - a[1]);
  let sum = 0;
  for (const [k, ms] of rows) {
    sum += ms;
    const g = r.info.get(k);
    const perStep = prefill && !k.startsWith("output") ? prefill : batch; // a prompt's logits: its last position only
    const per = g ? ` | ${g.calls} mats, ${(g.weights / 1e6).toFixed(1)} M weights, ${((ms * 1e6) / g.weights).toFixed(3)} ns/weight, ${((g.weights * perStep) / (ms * 1e6)).toFixed(1)} G mult-adds/s` : "";
    console.log(`  ${k.padEnd(34)} ${ms.toFixed(2).padStart(7)} ms${per}`);
  }
  console.log(`  ${"sum of kernel calls".padEnd(34)} ${sum.toFixed(2).padStart(7)} ms; outside kernels ${(r.step - sum).toFixed(2)} ms`);
}
