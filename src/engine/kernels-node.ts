/**
 * Node loader for the kernels: reads build/kernels-*.wasm, compiles what this
 * runtime supports (the relaxed build needs `--experimental-wasm-relaxed-simd`
 * in Node 20; without it compilation fails and that build is skipped) and
 * hands the modules to loadKernels.
 */
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
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

/**
 * Turns on relaxed SIMD for wasm compiled from now on in this process
 * (Node 20 ships it behind `--experimental-wasm-relaxed-simd`; V8 reads the
 * flag at compile time, so setting it at run time works — checked on Node
 * 20.20). Safe to try: the relaxed build is still used only if its self-test
 * is bit-identical to scalar. Returns whether relaxed modules now compile.
 */
export function enableRelaxedSimd(): boolean {
  if (relaxedSupported()) return true;
  try {
    setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    return false;
  }
  return relaxedSupported();
}

// A function whose body is `v128.const 0; i16x8.relaxed_dot_i8x16_i7x16_s; drop` — compiles only with relaxed SIMD.
function relaxedSupported(): boolean {
  const bytes = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
    0x03, 0x02, 0x01, 0x00, // func 0: type 0
    0x0a, 0x2c, 0x01, 0x2a, 0x00, // code section (44 B): 1 body of 42 B, no locals
    0xfd, 0x0c, ...new Array(16).fill(0), // v128.const 0
    0xfd, 0x0c, ...new Array(16).fill(0), // v128.const 0
    0xfd, 0x92, 0x02, // i16x8.relaxed_dot_i8x16_i7x16_s (0x112)
    0x1a, 0x0b, // drop, end
  ]);
  try {
    new WebAssembly.Module(bytes);
    return true;
  } catch {
    return false;
  }
}
