import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { percentile } from "../../src/generate/eval-stats";
import { strArray } from "../../src/gguf/metadata";
import { openGGUF, writeGGUFFile } from "../../src/gguf/node";
import { loadReferenceModel } from "../../src/model/node";
import { Tokenizer } from "../../src/tokenizer/node";
import { synthGGUF } from "../../weights-tools/fixtures";
import { spawnEdgelm } from "../helpers/cli";
import { TEXT, directKl, directPerplexity } from "../generate/perplexity-direct";

function edgelm(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/edgelm.mjs", ...args], { encoding: "utf8", timeout: 180_000, maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = await mkdtemp(join(tmpdir(), "edgelm-ppl-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A copy of `path` whose vocabulary names one token differently: the tensors are the same. */
async function withRenamedToken(path: string, out: string): Promise<string> {
  const file = await openGGUF(path);
  const metadata = new Map(file.metadata);
  const tokens = [...(metadata.get("tokenizer.ggml.tokens")!.value as string[])];
  tokens[1000] = `${tokens[1000]}-renamed`;
  metadata.set("tokenizer.ggml.tokens", strArray(tokens));
  await writeGGUFFile(out, {
    metadata,
    alignment: file.alignment,
    tensors: file.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: () => file.readTensor(t) })),
  });
  await file.close();
  return out;
}

describe("edgelm perplexity", async () => {
  const f32 = await synthGGUF("tiny", "f32");
  const q8 = await synthGGUF("tiny", "q8_0");
  const text = join(dir, "text.txt");
  await writeFile(text, TEXT);
  const short = join(dir, "short.txt");
  await writeFile(short, "Too short to measure.");
  const { model: ref, file } = await loadReferenceModel(f32);
  const tokens = Tokenizer.fromGGUF(file.metadata).encode(TEXT);
  const run = (...args: string[]) => edgelm("perplexity", "--text", text, "--context", "16", ...args);

  it("answers --help, and edgelm --help lists it", () => {
    const r = edgelm("perplexity", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: edgelm perplexity --model F.gguf --text FILE");
    expect(r.stdout).toContain("--kl-base FILE");
    expect(edgelm("--help").stdout).toMatch(/perplexity +measure perplexity/);
  });

  it("--json with the reference engine: PPL equals a direct float64 log-softmax over its logits", async () => {
    const r = run("--model", f32, "--engine", "ref", "--chunks", "3", "--json");
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j)).toEqual(["model", "text", "text_tokens", "bos", "method", "context", "chunks", "scored_per_chunk", "scored", "ppl", "ppl_uncertainty", "mean_nll", "mean_nll_uncertainty", "running_ppl", "timings"]);
    expect(j).toMatchObject({ model: f32, text, text_tokens: tokens.length, bos: false, method: "llama-perplexity", context: 16, chunks: 3, scored_per_chunk: 7, scored: 21 });
    const want = await directPerplexity(ref, tokens, 16, 3);
    expect(Math.abs(j.ppl - want)).toBeLessThanOrEqual(1e-12 * want);
    expect(j.ppl_uncertainty).toBeGreaterThan(0);
    expect(Math.exp(j.mean_nll)).toBeCloseTo(j.ppl, 6);
    expect(j.running_ppl).toHaveLength(3);
    expect(j.running_ppl[2]).toBe(j.ppl);
    expect(j.timings.engine).toBe("ref");
    // Not a terminal: no bar, one summary line.
    expect(r.stderr).toBe("perplexity: 3 chunks of 16 in " + r.stderr.split(" in ")[1]);
  });

  it("the wasm engine by default, as a report: the reference's PPL within the kernels' rounding", async () => {
    const r = run("--model", f32, "--threads", "1");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^engine +wasm/m);
    const chunks = Math.floor(tokens.length / 16);
    expect(r.stdout).toContain(`chunks   ${chunks} of 16 tokens; positions 8..14 of each scored: ${chunks * 7} predictions`);
    const ppl = Number(/^PPL +([\d.]+) ± [\d.]+/m.exec(r.stdout)![1]);
    const want = await directPerplexity(ref, tokens, 16, chunks);
    expect(Math.abs(ppl - want) / want).toBeLessThan(1e-3);
  });

  it("--kl-base of the same model: KL 0, top-1 agreement 100%, the same PPL", () => {
    const j = JSON.parse(run("--model", f32, "--kl-base", f32, "--chunks", "2", "--threads", "1", "--json").stdout);
    expect(j.kl.kld).toMatchObject({ mean: 0, max: 0, p99: 0, min: 0 });
    expect(j.kl.top1_agreement).toBe(1);
    expect(j.kl.ppl_base).toBe(j.ppl);
    expect(j.kl.ln_ppl_ratio).toBe(0);
  });

  it("--kl-base F32 for its Q8_0 conversion: KL > 0 and small, as a direct computation gives it", async () => {
    // --context 8 (given last, it wins): the float64 reference over both models stays quick.
    const r = run("--model", q8, "--kl-base", f32, "--chunks", "2", "--engine", "ref", "--json", "--context", "8");
    expect(r.code, r.stderr).toBe(0);
    const { kl } = JSON.parse(r.stdout);
    const { model: refQ8 } = await loadReferenceModel(q8);
    const want = await directKl(refQ8, ref, tokens, 8, 2);
    const klds = want.map((w) => w.kl).sort((a, b) => a - b);
    const mean = klds.reduce((s, x) => s + x, 0) / klds.length;
    expect(kl.kld.mean).toBeGreaterThan(0);
    expect(kl.kld.mean).toBeLessThan(0.01);
    expect(Math.abs(kl.kld.mean - mean)).toBeLessThanOrEqual(1e-9 * mean);
    expect(Math.abs(kl.kld.p99 - percentile(klds, 0.99))).toBeLessThanOrEqual(1e-9 * mean);
    expect(kl.top1_agreement).toBe(want.filter((w) => w.sameTop).length / want.length);
    expect(want).toHaveLength(6);
    expect(Object.keys(kl)).toEqual(expect.arrayContaining(["ppl_base", "ln_ppl_ratio", "ppl_ratio", "ppl_diff", "correlation", "kld", "delta_p", "top1_agreement", "top1_agreement_uncertainty"]));
  });

  it("bad input: one clear line and a failing exit code, before any model is loaded", async () => {
    const renamed = await withRenamedToken(f32, join(dir, "renamed.gguf"));
    const cases: [string[], number, string][] = [
      [["--model", join(dir, "nope.gguf"), "--text", text], 1, `no such file: ${join(dir, "nope.gguf")}`],
      [["--model", f32, "--text", join(dir, "nope.txt")], 1, `no such file: ${join(dir, "nope.txt")}`],
      [["--model", f32, "--text", dir], 1, `${dir} is not a file`],
      [["--model", f32, "--text", short, "--context", "16"], 1, `${short}: the text is 5 tokens; a context of 16 needs at least 32 (two chunks)`],
      [["--model", f32, "--text", text, "--context", "15"], 2, "--context must be even"],
      [["--model", f32, "--text", text, "--context", "2"], 2, "--context must be in 4.."],
      [["--model", f32, "--text", text, "--context", "8192"], 2, "--context 8192 exceeds the model's context length 4096"],
      [["--model", f32, "--text", text, "--chunks", "0"], 2, "--chunks must be in 1.."],
      [["--model", f32], 2, "--text is required"],
      [["--model", f32, "--text", text, "--context", "16", "--kl-base", renamed], 1, "do not share a tokenizer (tokenizer.ggml.tokens differs at entry 1000"],
    ];
    const runs = cases.map(([args]) => spawnEdgelm(["perplexity", ...args]));
    for (let i = 0; i < cases.length; i++) {
      const [, code, message] = cases[i];
      expect(await runs[i].exit, runs[i].stderr()).toBe(code);
      expect(runs[i].stderr()).toContain(message);
      expect(runs[i].stderr().trim().split("\n"), runs[i].stderr()).toHaveLength(1);
      expect(runs[i].stdout()).toBe("");
    }
  });
});
