/**
 * The layering of docs/architecture.md, enforced: dependency-cruiser runs the rules of
 * .dependency-cruiser.cjs over src/ and weights-tools/. A second tree, written here to break
 * every rule once, shows that each rule can fail and that the failure names it.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const config = join(root, ".dependency-cruiser.cjs");
const depcruise = join(root, "node_modules", ".bin", "depcruise");

function cruise(cwd: string): { status: number | null; out: string } {
  const r = spawnSync(depcruise, ["src", "weights-tools", "--config", config, "--output-type", "err"], { cwd, encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("layers (dependency-cruiser, .dependency-cruiser.cjs)", () => {
  it("src/ and weights-tools/ break no rule", () => {
    const { status, out } = cruise(root);
    // On failure the output lists "error <rule-name>: from → to" for each broken import.
    expect(out).toMatch(/no dependency violations found/);
    expect(status).toBe(0);
  });

  const bad = mkdtempSync(join(tmpdir(), "edgelm-layers-"));
  afterAll(() => rmSync(bad, { recursive: true, force: true }));

  it("every rule fails, by name, on a tree that breaks it", () => {
    const files: Record<string, string> = {
      "tsconfig.json": JSON.stringify({ compilerOptions: { module: "ESNext", moduleResolution: "Bundler", allowImportingTsExtensions: true, noEmit: true } }),
      "src/api/handler.ts": "export const h = 1;",
      "src/gguf/reads-api.ts": 'import { h } from "../api/handler"; export const x = h;',
      "src/model/reads-engine.ts": 'import { e } from "../engine/thing"; export const x = e;',
      "src/engine/thing.ts": "export const e = 1;",
      "src/tokenizer/reads-model.ts": 'import { x } from "../model/reads-engine"; export const y = x;',
      "src/util/reads-gguf.ts": 'import { x } from "../gguf/reads-api"; export const y = x;',
      "src/shard/reads-generate.ts": 'import { g } from "../generate/gen"; export const y = g;',
      "src/generate/gen.ts": 'import { r } from "../routing/route"; export const g = r;',
      "src/routing/route.ts": 'import { w } from "../worker/host"; export const r = w;',
      "src/api/reads-routing.ts": 'import { r } from "../routing/route"; export const y = r;',
      "src/client/reads-api.ts": 'import { h } from "../api/handler"; export const y = h;',
      "src/playground/reads-api.ts": 'import { h } from "../api/handler"; export const y = h;',
      "src/worker/host.ts": "export const w = 1;",
      "src/model/uses-fs.ts": 'import { readFileSync } from "node:fs"; export const f = readFileSync;',
      "src/model/node.ts": 'import { readFileSync } from "node:fs"; export const n = readFileSync;',
      "src/engine/uses-node-face.ts": 'import { n } from "../model/node"; export const y = n;',
      "src/worker.ts": 'import { f } from "./model/uses-fs"; export default f;',
      "src/gguf/camelCase.ts": 'import { h } from "../api/handler"; export const y = h;',
      "src/local/reads-routing.ts": 'import { r } from "../routing/route"; export const y = r;',
      "src/local/index.ts": 'import { e } from "../engine/thing"; export const y = e;',
      "src/local/worker.ts": 'import { f } from "../model/uses-fs"; export const y = f;',
      "weights-tools/reads-api.ts": 'import { h } from "../src/api/handler"; export const y = h;',
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(bad, path)), { recursive: true });
      writeFileSync(join(bad, path), text);
    }
    const { status, out } = cruise(bad);
    expect(status).not.toBe(0);
    const broken = new Set([...out.matchAll(/error ([a-z-]+):/g)].map((m) => m[1]));
    expect([...broken].sort()).toEqual(
      [
        "api-imports-only-below",
        "client-imports-only-below",
        "playground-imports-only-below",
        "file-names-kebab-case",
        "generate-imports-only-below",
        "gguf-imports-only-below",
        "host-neutral-imports-no-node-ts",
        "library-imports-no-host",
        "local-bundle-has-no-node",
        "local-imports-only-below",
        "local-page-imports-only-protocol",
        "model-imports-only-below",
        "node-builtins-only-in-node-ts",
        "routing-imports-only-below",
        "shard-imports-only-below",
        "tokenizer-imports-only-below",
        "util-imports-only-below",
        "weights-tools-imports-gguf-tokenizer-shard-node",
        "worker-bundle-has-no-node",
      ].sort(),
    );
    // The file that may import node: is not flagged for it.
    expect(out).not.toMatch(/node-builtins-only-in-node-ts: src\/model\/node\.ts/);
  });
});
