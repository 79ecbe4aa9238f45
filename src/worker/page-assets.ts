/**
 * edgelm/local's files for the playground's "on this device" mode, from the module the build
 * writes (the Worker's bundler takes no loose .js or .wasm bytes). Decoded once per isolate, on
 * first use, so isolates that never serve the page pay nothing.
 */
import built from "../../build/local/assets.js";
import type { PageAssets } from "../api/index";

let decoded: PageAssets | undefined;

export function localPageAssets(): PageAssets {
  decoded ??= Object.fromEntries(
    Object.entries(built).map(([name, a]) => [name, { type: a.type, body: a.text ?? Uint8Array.from(atob(a.base64 ?? ""), (c) => c.charCodeAt(0)) }]),
  );
  return decoded;
}
