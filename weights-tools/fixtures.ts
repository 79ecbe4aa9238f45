/**
 * Synthetic GGUF fixtures for tests, generated once per machine and shared by every test file
 * (and every vitest worker): cached under os.tmpdir()/edgelm-fixtures, keyed by preset, type,
 * seed and a hash of the code that produces them, so a change to the generator never serves a
 * stale file.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { manifestPathFor } from "../src/gguf/manifest";
import { jan2024Metadata, type Jan2024Variant } from "./jan2024";
import { isOutType, type OutType } from "./mapping";
import { isPresetName, writeSynthGGUF, type PresetName } from "./synth";

const here = dirname(fileURLToPath(import.meta.url));

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? filesUnder(p) : [p];
    });
}

let codeHash: string | undefined;
/** The generator is this folder plus the GGUF encoder and the tokenizer metadata it embeds. */
function generatorHash(): string {
  if (codeHash) return codeHash;
  const h = createHash("sha256");
  const roots = [here, join(here, "../src/gguf"), join(here, "../src/tokenizer")];
  for (const f of roots.flatMap(filesUnder)) {
    h.update(f.slice(f.lastIndexOf("/") + 1));
    h.update(readFileSync(f));
  }
  codeHash = h.digest("hex").slice(0, 12);
  return codeHash;
}

const pending = new Map<string, Promise<string>>();

/** Path of the synthetic `preset` model as a GGUF of `type`, generated on first use. */
export async function synthGGUF(preset: string, type: string, seed = 0): Promise<string> {
  if (!isPresetName(preset)) throw new Error(`synthGGUF: unknown preset ${JSON.stringify(preset)}`);
  if (!isOutType(type)) throw new Error(`synthGGUF: unknown type ${JSON.stringify(type)}`);
  return cached(`synth-${preset}-${type}-seed${seed}`, (tmp) => writeSynthGGUF(preset, tmp, type, seed, { onWarning: () => {} }));
}

/**
 * Path of a synthetic `preset` model under the metadata Stability's January
 * 2024 GGUFs of `variant` carry (./jan2024.ts), generated on first use.
 */
export async function jan2024GGUF(variant: Jan2024Variant, preset: PresetName = "tiny", type: OutType = "q4_0"): Promise<string> {
  return cached(`jan2024-${variant}-${preset}-${type}`, (tmp) =>
    writeSynthGGUF(preset, tmp, type, 0, { onWarning: () => {}, rewriteMetadata: (m) => jan2024Metadata(m, variant) }),
  );
}

/** The file `name` in the fixture folder, written by `write` (to a temporary path) unless it is there. */
async function cached(name: string, write: (tmp: string) => Promise<unknown>): Promise<string> {
  const dir = join(tmpdir(), "edgelm-fixtures");
  const path = join(dir, `${name}-${generatorHash()}.gguf`);
  if (existsSync(path)) return path;
  let p = pending.get(path);
  if (!p) {
    p = (async () => {
      await mkdir(dir, { recursive: true });
      // Each writer has its own temporary name; rename is atomic, so racing workers all end with one whole file.
      const tmp = `${path}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`;
      try {
        await write(tmp);
        // The manifest first: a fixture that exists always has its manifest beside it.
        await rename(manifestPathFor(tmp), manifestPathFor(path));
        await rename(tmp, path);
      } finally {
        await rm(tmp, { force: true });
        await rm(manifestPathFor(tmp), { force: true });
      }
      return path;
    })();
    pending.set(path, p);
    p.catch(() => pending.delete(path));
  }
  return p;
}
