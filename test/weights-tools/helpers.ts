/** Shared pieces of the weights-tools tests: temp folders and HF folders with edited configs. */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectedHFTensors } from "../../weights-tools/mapping";
import { rowsOf, writeSafetensors, type FloatDtype, type SafetensorsWriteTensor } from "../../weights-tools/safetensors";
import { parseStableLMConfig } from "../../weights-tools/stablelm-config";
import { presetConfig, synthSource } from "../../weights-tools/synth";

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `edgelm-${prefix}-`));
}

/**
 * An HF folder whose config is the tiny preset's with `edit` applied, holding synthetic weights
 * for exactly the tensors `keep` lets through (all by default) plus `extra` ones.
 */
export async function customHF(dir: string, edit: (cfg: Record<string, unknown>) => void, opts: { keep?: (name: string) => boolean; extra?: { name: string; shape: number[] }[]; dtype?: FloatDtype } = {}): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const cfg = presetConfig("tiny");
  edit(cfg);
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg, null, 2));
  const hp = parseStableLMConfig(cfg);
  const src = synthSource(hp, 7);
  const tensors: SafetensorsWriteTensor[] = expectedHFTensors(hp)
    .filter((t) => (opts.keep ?? (() => true))(t.name))
    .map((t) => ({ name: t.name, shape: t.shape, rows: (s: number, n: number) => src.readRows(t.name, s, n) }));
  for (const e of opts.extra ?? []) tensors.push({ name: e.name, shape: e.shape, rows: (_s, n) => new Float32Array(n * rowsOf(e.shape).rowLength) });
  await writeSafetensors(join(dir, "model.safetensors"), tensors, opts.dtype ?? "F32");
  return dir;
}
