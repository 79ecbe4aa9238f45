/**
 * Node loader for the kernels: reads build/kernels-*.wasm, compiles what this
 * runtime supports (the relaxed build needs `--experimental-wasm-relaxed-simd`
 * in Node 20; without it compilation fails and that build is skipped) and
 * hands the modules to loadKernels.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join, dirname } from "node:path";
import { loadKernels, type BuildKind, type KernelModules, type Kernels, type LoadKernelsOptions } from "./kernels";

export const DEFAULT_BUILD_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "build");

export interface CompiledKernels {
  modules: KernelModules;
  unavailable: Partial<Record<BuildKind, string>>;
}

const FILES: Record<BuildKind, string> = {
  relaxed: "kernels-relaxed.wasm",
  simd: "kernels-simd.wasm",
  scalar: "kernels-scalar.wasm",
};

export function compileKernelModules(dir = DEFAULT_BUILD_DIR): CompiledKernels {
  const modules: KernelModules = {};
  const unavailable: Partial<Record<BuildKind, string>> = {};
  for (const kind of Object.keys(FILES) as BuildKind[]) {
    let bytes: ReturnType<typeof readFileSync>;
    try {
      bytes = readFileSync(join(dir, FILES[kind]));
    } catch (e) {
      unavailable[kind] = `cannot read ${FILES[kind]} (run npm run build): ${(e as Error).message}`;
      continue;
    }
    try {
      modules[kind] = new WebAssembly.Module(bytes);
    } catch (e) {
      const msg = (e as Error).message;
      unavailable[kind] = /relaxed/i.test(msg) ? `not supported by this runtime (${msg.split("\n")[0]})` : `compile error: ${msg}`;
    }
  }
  return { modules, unavailable };
}

export function loadKernelsNode(
  opts: Omit<LoadKernelsOptions, "modules" | "unavailable"> & { dir?: string },
): Kernels {
  const { modules, unavailable } = compileKernelModules(opts.dir);
  return loadKernels({ ...opts, modules, unavailable });
}
