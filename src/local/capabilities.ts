/**
 * What the browser must offer before a byte of the model is fetched: WebAssembly with SIMD (every
 * kernel build but scalar needs it, and scalar is several times too slow to be worth a download),
 * and a memory that can grow to what the model needs (wasm32: at most 4 GiB, which holds the 1.6B
 * at Q4_0 with a full context of KV cache). Each failure is a sentence a user can act on.
 */
import type { LocalErrorInfo } from "./protocol";

// (func (drop (v128.const i64x2 0 0))): validates only where WASM SIMD is supported.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x17, 0x01, 0x15, 0x00, 0xfd, 0x0c, ...new Array(16).fill(0), 0x1a, 0x0b,
]);

export function missingCapability(): LocalErrorInfo | undefined {
  if (typeof WebAssembly !== "object") return { code: "no_wasm_simd", message: "this browser has no WebAssembly: the on-device engine cannot run here; use the server instead" };
  if (!WebAssembly.validate(SIMD_PROBE)) {
    return { code: "no_wasm_simd", message: "this browser's WebAssembly has no SIMD (Chrome ≥ 91, Firefox ≥ 89 and Safari ≥ 16.4 have it): the on-device engine cannot run here; use the server instead" };
  }
  return undefined;
}

/** A failed memory grow, said in terms of the model; anything else is left as it is. */
export function memoryError(err: unknown): LocalErrorInfo | undefined {
  const msg = err instanceof Error ? err.message : String(err);
  const m = /cannot grow memory to \d+ pages \(([\d.]+) MiB\)/.exec(msg);
  if (!m && !/WebAssembly\.Memory|Out of memory|out of memory|exceed the 4 GiB/i.test(msg)) return undefined;
  const need = m ? `${Math.ceil(Number(m[1]))} MiB of WebAssembly memory` : "more WebAssembly memory than this browser gives a page";
  return {
    code: "no_memory",
    message: `the model needs ${need} and this browser could not provide it (${msg}). Close other tabs, use a 64-bit desktop browser, or lower the KV cache (settings.contextLength / kvBudgetMB)`,
  };
}
