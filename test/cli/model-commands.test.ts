import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { argmax } from "../../src/generate/sampler";
import { loadReferenceModel } from "../../src/model/node";
import { loadWasmEngine } from "../../src/engine/node";
import { synthGGUF } from "../../weights-tools/fixtures";

function edgelm(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/edgelm.mjs", ...args], { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("edgelm inspect / logits / generate", async () => {
  const model = await synthGGUF("tiny", "q4_0");

  it("every command answers --help with its usage, and the bare command lists them", () => {
    for (const cmd of ["inspect", "logits", "generate", "convert", "synth", "download", "tokenize", "detokenize"]) {
      const r = edgelm(cmd, "--help");
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toContain(`Usage: edgelm ${cmd}`);
    }
    const r = edgelm("--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/logits .*next-token logits/);
  });

  it("inspect prints metadata and the tensor table", () => {
    const r = edgelm("inspect", "--model", model);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('general.architecture = "stablelm"');
    expect(r.stdout).toMatch(/blk\.0\.attn_q\.weight\s+Q4_0\s+\[64, 64\]/);
    const j = JSON.parse(edgelm("inspect", "--model", model, "--json").stdout);
    expect(j.metadata["stablelm.block_count"]).toBe(2);
    expect(j.tensors.find((t: { name: string }) => t.name === "output_norm.bias").type).toBe("F32");
  });

  it("logits --json prints the last position's vocab_size logits, as the reference computes them", async () => {
    const r = edgelm("logits", "--model", model, "--tokens", "9906,11,358", "--engine", "ref", "--json");
    expect(r.code, r.stderr).toBe(0);
    const { logits } = JSON.parse(r.stdout) as { logits: number[] };
    const { model: ref } = await loadReferenceModel(model);
    expect(logits).toHaveLength(100352);
    expect(Float32Array.from(logits)).toEqual(ref.forward(ref.newSequence(), [9906, 11, 358])[0]);
  });

  it("generate is greedy at temperature 0 and reproducible with a seed", async () => {
    const g = JSON.parse(edgelm("generate", "--model", model, "--prompt", "Hello", "--max-tokens", "4", "--engine", "ref", "--json").stdout);
    const { model: ref } = await loadReferenceModel(model);
    const seq = ref.newSequence();
    const want: number[] = [];
    let logits = ref.forward(seq, [9906])[0];
    for (let i = 0; i < 4; i++) {
      want.push(argmax(logits));
      logits = ref.forward(seq, [want[i]])[0];
    }
    expect(g.tokens).toEqual(want);
    expect(typeof g.text).toBe("string");
    expect(g.timings.prompt_tokens).toBe(1);
    const a = edgelm("generate", "--model", model, "--tokens", "1,2", "--max-tokens", "5", "--temperature", "0.7", "--top-p", "0.95", "--top-k", "50", "--seed", "7", "--threads", "1", "--json");
    const b = edgelm("generate", "--model", model, "--tokens", "1,2", "--max-tokens", "5", "--temperature", "0.7", "--top-p", "0.95", "--top-k", "50", "--seed", "7", "--threads", "1", "--json");
    expect(JSON.parse(a.stdout).tokens).toEqual(JSON.parse(b.stdout).tokens);
  });

  it("logits and generate use the wasm engine by default, matching it in process (any --threads)", async () => {
    const e = await loadWasmEngine(model, { relaxed: false, threads: 1 });
    const r = edgelm("logits", "--model", model, "--tokens", "9906,11,358", "--threads", "1", "--json");
    expect(r.code, r.stderr).toBe(0);
    const { logits } = JSON.parse(r.stdout) as { logits: number[] };
    // Every kernel build gives the same bits, so the CLI's choice (relaxed when possible) does not matter.
    expect(Float32Array.from(logits)).toEqual(e.forward(e.newSequence(), [9906, 11, 358])[0]);
    // Rows split over three threads: the same bits.
    const explicit = JSON.parse(edgelm("logits", "--model", model, "--tokens", "9906,11,358", "--engine", "wasm", "--threads", "3", "--json").stdout);
    expect(explicit.logits).toEqual(logits);

    const g = JSON.parse(edgelm("generate", "--model", model, "--prompt", "Hello", "--max-tokens", "6", "--threads", "1", "--json").stdout);
    expect(g.timings.engine).toMatch(/^wasm \((relaxed|simd) kernels: /);
    const seq = e.newSequence();
    const want: number[] = [];
    let next = e.forward(seq, [9906])[0];
    for (let i = 0; i < 6; i++) {
      want.push(argmax(next));
      next = e.forward(seq, [want[i]])[0];
    }
    expect(g.tokens).toEqual(want);
  });

  it("bad arguments and files: one line on stderr, non-zero exit", () => {
    const cases: [string[], number, RegExp][] = [
      [["logits", "--model", model], 2, /--tokens is required/],
      [["logits", "--model", model, "--tokens", "1,x"], 2, /"x" is not a token id/],
      [["logits", "--model", model, "--tokens", "100352"], 2, /outside the model's vocabulary/],
      [["logits", "--model", model, "--tokens", "1", "--engine", "gpu"], 2, /--engine must be one of/],
      [["logits", "--model", model, "--tokens", "1", "--threads", "0"], 2, /--threads must be in 1\.\.1024, got 0/],
      [["logits", "--model", "/nonexistent.gguf", "--tokens", "1"], 1, /no such file: \/nonexistent\.gguf/],
      [["logits", "--model", "package.json", "--tokens", "1"], 1, /not a GGUF file/],
      [["generate", "--model", model], 2, /exactly one of --prompt or --tokens/],
      [["generate", "--model", model, "--tokens", "1", "--temperature", "hot"], 2, /--temperature must be a number/],
      [["inspect", "--modle", model], 2, /Unknown option '--modle'/],
      [["frobnicate"], 2, /unknown command "frobnicate"/],
    ];
    for (const [args, code, message] of cases) {
      const r = edgelm(...args);
      expect(r.code, args.join(" ")).toBe(code);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
  });
});
