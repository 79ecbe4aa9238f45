import { loadWasmEngine } from "../src/engine/node.ts";
const e = await loadWasmEngine("/work/wt-batch/models/bench/synth-1_6b-q4_0-seed0.gguf", { threads: 1, sequences: 8, contextLength: 512 });
console.log(e.name);
for (const B of [1, 2, 4, 8]) {
  const seqs = Array.from({ length: B }, () => e.newSequence());
  e.forwardBatch(seqs.map((seq, i) => ({ seq, tokens: Array.from({ length: 32 }, (_, j) => (i * 97 + j * 13) % 1000) })));
  e.forwardBatch(seqs.map((seq) => ({ seq, tokens: [5] })));
  const steps = 8, t0 = performance.now();
  for (let s = 0; s < steps; s++) e.forwardBatch(seqs.map((seq) => ({ seq, tokens: [7 + s] })));
  const dt = (performance.now() - t0) / 1000;
  console.log(`B=${B}: ${(B * steps / dt).toFixed(1)} tok/s aggregate, ${(dt / steps * 1000).toFixed(0)} ms/step`);
  seqs.forEach((s) => s.release());
}
