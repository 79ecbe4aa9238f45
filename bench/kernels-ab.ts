/**
 * One kernel, two builds, alternating in one process: the A/B measurement behind the before/after
 * figures in docs/kernels.md. Not a test.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/kernels-ab.ts A.wasm B.wasm
 *        [--kernel matmul_q4r_q8b] [--shape 5632,2048,64] [--host node|workerd] [--n 10]
 *        [--v8-flags "..."]   (workerd's V8 flags; for Node put them on node's command line)
 *
 * A and B are kernel builds (e.g. a copy of build/kernels-relaxed.wasm from before a change, and
 * the current one). Kernels: matmul_q4r_q8b, matmul_q8r_q8b, matmul_q4kr_q8b (shape
 * rows,cols,tokens), matvec_q4r_q8a, matvec_q8r_q8a, matvec_q6r_q8a, matvec_q4kr_q8a, matvec_q5kr_q8a (shape
 * rows,cols); the Q4_1 / Q5_0 / Q5_1 ones (q41r, q50r, q51r) and Q2KR / Q3KR's (Q2_K / Q3_K rows repacked, cols a multiple of 256) and matvec_f16 / matvec_bf16 too;
 * attention_f16kv_causal (shape past,tokens: a prompt chunk of `tokens` rows after `past` cached positions, 32 heads of 64). Node: each build is called
 * for 150 ms at a time, twelve times in turn, and the best CPU time per call is kept. workerd (the
 * bare binary): a Worker runs n calls per request, timed from outside the process (a Worker's
 * clock does not advance while it computes): (best of 6 requests of 2n calls − best of 6 of n) / n.
 * Both warm each build up first, and print whether A's and B's outputs agree.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { exitOnHelp } from "./usage";
import { perCall, startProbe, type ProbeModule } from "./workerd-probe";

exitOnHelp("usage: node --experimental-wasm-relaxed-simd --import tsx bench/kernels-ab.ts A.wasm B.wasm [--kernel matmul_q4r_q8b] [--shape 5632,2048,64] [--host node|workerd] [--n 10] [--v8-flags \"...\"]");

const argv = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
};
const [fileA, fileB] = argv.filter((a, i) => !a.startsWith("--") && !argv[i - 1]?.startsWith("--"));
if (!fileA || !fileB) throw new Error("usage: bench/kernels-ab.ts A.wasm B.wasm [--kernel name] [--shape rows,cols[,tokens]] [--host node|workerd] [--n calls]");
const kernel = opt("--kernel", "matmul_q4r_q8b");
const attention = kernel === "attention_f16kv_causal";
const [rows, cols, ntok = 1] = opt("--shape", kernel.startsWith("matmul") ? "5632,2048,64" : attention ? "448,64" : "5632,2048").split(",").map(Number);
const host = opt("--host", "node");

/**
 * Plain JavaScript shared by both hosts: random weights (finite block scales) and activations in
 * a memory of the build's own, and a closure that calls the kernel once.
 */
const SETUP = String.raw`
export function setup(module, fn, rows, cols, ntok) {
  // A shared-memory build (kernels-*-shared.wasm) links only to a shared memory.
  const shared = WebAssembly.Module.imports(module).length > 0 && (() => { try { new WebAssembly.Instance(module, { env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 65536 }) } }); return false; } catch { return true; } })();
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared });
  const e = new WebAssembly.Instance(module, { env: { memory } }).exports;
  let top = e.heap_base() >>> 0;
  const alloc = (n) => { const p = Math.ceil(top / 64) * 64; top = p + n; if (top > memory.buffer.byteLength) memory.grow(Math.ceil((top - memory.buffer.byteLength) / 65536)); return p; };
  if (fn === "attention_f16kv_causal") return setupAttention(e, memory, alloc, rows, cols);
  const q8 = fn.includes("q8r"), q6 = fn.includes("q6r"), q4k = fn.includes("q4kr"), q5k = fn.includes("q5kr");
  // Q41R, Q50R, Q51R: per 4-row group and block, f16 d of the four rows at 0 (and Q41R's, Q51R's mins at 8).
  const r32 = ["q41r", "q50r", "q51r"].find((k) => fn.includes(k));
  // Q2KR and Q3KR: Q2_K and Q3_K rows (84 / 110 bytes per 256 values, f16 d and Q2_K's dmin at 80 and 82 / 108) repacked.
  const low = fn.includes("q2kr") ? 84 : fn.includes("q3kr") ? 110 : 0;
  const lowBytes = low === 84 ? e.q2kr_bytes : e.q3kr_bytes;
  // F16 rows: halves of magnitude 0.008..0.06, and 1 in 512 a subnormal half (a real model has about 1 in 400 below 6.1e-5).
  const f16 = fn === "matvec_f16", bf16 = fn === "matvec_bf16";
  const wb = f16 || bf16 ? rows * cols * 2 : low ? Math.max((rows * cols / 256) * low, lowBytes(rows, cols) >>> 0) : r32 ? e[r32 + "_bytes"](rows, cols) >>> 0 : q8 ? e.q8r_bytes(rows, cols) >>> 0 : q6 ? e.q6r_bytes(rows, cols) >>> 0 : q4k ? e.q4kr_bytes(rows, cols) >>> 0 : q5k ? e.q5kr_bytes(rows, cols) >>> 0 : e.q4r_bytes(rows, cols) >>> 0;
  const w = alloc(wb), x = alloc(ntok * cols * 4), xb = alloc(Math.max(e.q8b_bytes(cols, ntok) >>> 0, e.q8a_bytes(cols) >>> 0)), out = alloc(rows * ntok * 4);
  let s = 1;
  const u8 = new Uint8Array(memory.buffer, w, wb);
  for (let i = 0; i < u8.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; u8[i] = s >>> 24; }
  const dv = new DataView(memory.buffer);
  if (f16) { for (let i = 0; i < wb; i += 2) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; const m = s >>> 22; dv.setUint16(w + i, (s & 0x8000) | (m < 2 ? (m + 1) << 8 : 0x2000 + ((s >>> 8) % 0xa00)), true); } }
  else if (bf16) { for (let i = 0; i < wb; i += 2) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; dv.setUint16(w + i, (s & 0x8000) | (0x3c00 + ((s >>> 8) % 0x180)), true); } }
  else if (low) { for (let i = 0; i + low <= (rows * cols / 256) * low; i += low) for (const o of low === 84 ? [80, 82] : [108]) dv.setUint16(w + i + o, 0x2c00, true); (low === 84 ? e.repack_q2_k : e.repack_q3_k)(w, w, rows, cols); }
  else if (r32) { const bb = { q41r: 80, q50r: 88, q51r: 96 }[r32]; for (let i = 0; i < wb; i += bb) for (let j = 0; j < (r32 === "q50r" ? 8 : 16); j += 2) dv.setUint16(w + i + j, 0x2c00, true); }
  else if (q8) { for (let i = 0; i < rows * cols / 32; i++) dv.setUint16(w + i * 34, 0x2c00, true); e.repack_q8_0(w, w, rows, cols); }
  else if (q4k) { for (let i = 0; i < rows * cols / 256; i++) dv.setUint32(w + i * 144, 0x18002c00, true); e.repack_q4_k(w, w, rows, cols); }
  else if (q5k) { for (let i = 0; i < rows * cols / 256; i++) dv.setUint32(w + i * 176, 0x18002c00, true); e.repack_q5_k(w, w, rows, cols); }
  else if (q6) for (let i = 0; i < wb / 210; i++) dv.setUint16(w + i * 210 + 208, 0x1800, true);
  else for (let i = 0; i < wb; i += 72) { dv.setUint32(w + i, 0x2c002c00, true); dv.setUint32(w + i + 4, 0x2c002c00, true); }
  const xf = new Float32Array(memory.buffer, x, ntok * cols);
  for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2;
  let call;
  if (fn.startsWith("matmul")) { (q4k || q5k ? e.quantize_q8b_k : e.quantize_q8b)(x, cols, ntok, xb); call = () => e[fn](w, rows, cols, xb, ntok, out); }
  else if (f16 || bf16) call = () => e[fn](w, rows, cols, x, out);
  else { (q4k || q5k ? e.quantize_q8a_k : e.quantize_q8a)(x, cols, xb); call = () => e[fn](w, rows, cols, xb, out); }
  for (let i = 0; i < 30; i++) call();
  return { call, out: () => Array.from(new Uint32Array(memory.buffer, out, Math.min(256, rows * ntok))) };
}

// A prompt chunk's attention on the 1.6B's shape (32 heads of 64, blocks of 16 positions, K of every
// head then V in a block, as the engine's cache): ntok rows after past cached positions.
function setupAttention(e, memory, alloc, past, ntok) {
  const nh = 32, hd = 64, bp = 16, n = past + ntok;
  const nb = Math.ceil(n / bp), hb = bp * hd * 2, blockB = 2 * nh * hb;
  const cache = alloc(nb * blockB), table = alloc(nb * 4), q = alloc(ntok * nh * hd * 4), out = alloc(ntok * nh * hd * 4), sc = alloc(nh * n * 4);
  const tmp = alloc(nb * blockB * 2);
  const f = new Float32Array(memory.buffer, tmp, nb * blockB / 2);
  for (let i = 0; i < f.length; i++) f[i] = Math.sin(i * 0.37) * 2;
  e.f32_to_f16(tmp, cache, f.length);
  const t = new Uint32Array(memory.buffer, table, nb);
  for (let i = 0; i < nb; i++) t[i] = cache + i * blockB;
  const qf = new Float32Array(memory.buffer, q, ntok * nh * hd);
  for (let i = 0; i < qf.length; i++) qf[i] = Math.sin(i * 0.11) * 0.5;
  const call = () => e.attention_f16kv_causal(q, table, bp, 0, nh * hb, hb, out, ntok, past + 1, nh, 1, hd, nh * hd, sc);
  for (let i = 0; i < 3; i++) call();
  return { call, out: () => Array.from(new Uint32Array(memory.buffer, out, ntok * nh * hd)) };
}
`;

const WORKER = String.raw`
import A from "./a.wasm";
import B from "./b.wasm";
import { setup } from "./setup.js";
let S;
export default {
  async fetch(req) {
    const u = new URL(req.url);
    S ??= { a: setup(A, FN, ROWS, COLS, NTOK), b: setup(B, FN, ROWS, COLS, NTOK) };
    const X = S[u.searchParams.get("w")];
    if (u.searchParams.has("out")) return Response.json(X.out());
    for (let i = 0, n = Number(u.searchParams.get("n")); i < n; i++) X.call();
    return new Response("ok");
  },
};
`;

interface Outcome {
  a: number;
  b: number;
  same: boolean;
}

async function inNode(): Promise<Outcome> {
  setFlagsFromString("--experimental-wasm-relaxed-simd");
  const { setup } = await import(`data:text/javascript,${encodeURIComponent(SETUP)}`);
  const [A, B] = [fileA, fileB].map((f) => setup(new WebAssembly.Module(readFileSync(f)), kernel, rows, cols, ntok));
  const best = [Infinity, Infinity];
  for (let round = 0; round < 12; round++) {
    [A, B].forEach((X, i) => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < 150) {
        X.call();
        n++;
      }
      const c = process.cpuUsage(c0);
      best[i] = Math.min(best[i], (c.user + c.system) / 1e6 / n);
    });
  }
  return { a: best[0], b: best[1], same: JSON.stringify(A.out()) === JSON.stringify(B.out()) };
}

async function inWorkerd(): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), "edgelm-kernels-ab-"));
  copyFileSync(fileA, join(dir, "a.wasm"));
  copyFileSync(fileB, join(dir, "b.wasm"));
  writeFileSync(join(dir, "setup.js"), SETUP);
  writeFileSync(join(dir, "worker.js"), WORKER.replaceAll("FN, ROWS, COLS, NTOK", `${JSON.stringify(kernel)}, ${rows}, ${cols}, ${ntok}`));
  const modules: ProbeModule[] = [{ name: "worker.js", kind: "esModule" }, { name: "setup.js", kind: "esModule" }, { name: "a.wasm", kind: "wasm" }, { name: "b.wasm", kind: "wasm" }];
  const probe = await startProbe(dir, modules, "w=a&n=0", opt("--v8-flags", "").split(/\s+/).filter(Boolean));
  try {
    for (let i = 0; i < 30; i++) for (const w of ["a", "b"]) await probe.get(`w=${w}&n=1`); // tier up
    await new Promise((r) => setTimeout(r, 300));
    const t = await perCall(probe, ["a", "b"], (w, n) => `w=${w}&n=${n}`, Number(opt("--n", "10")));
    const same = (await probe.get("w=a&out=1")).body === (await probe.get("w=b&out=1")).body;
    return { a: t.a, b: t.b, same };
  } finally {
    await probe.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const r = host === "workerd" ? await inWorkerd() : await inNode();
// Attention: each row's q·k and weighted sum over the positions it sees, 32 heads of 64.
const macs = attention ? cols * (rows + (cols + 1) / 2) * 32 * 64 * 2 : rows * cols * ntok;
const g = (s: number) => `${(macs / s / 1e9).toFixed(1)} G MAC/s (${(s * 1e3).toFixed(3)} ms)`;
const shape = attention ? `${cols} rows after ${rows} cached positions` : `${rows}×${cols}${kernel.startsWith("matmul") ? `×${ntok}` : ""}`;
console.log(`${host} ${kernel} ${shape}: A ${g(r.a)}, B ${g(r.b)}, B/A ${(r.a / r.b).toFixed(3)}; outputs ${r.same ? "identical" : "DIFFER"}`);
