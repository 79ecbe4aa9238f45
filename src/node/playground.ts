/**
 * The playground page for `edgelm serve`: the same built file the Worker ships
 * (scripts/build-playground.mjs), read once at start. Without a build, `/` stays a 404.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { PageAssets } from "../api/index";

const BUILT = new URL("../../build/playground/index.html", import.meta.url);

export function playgroundPage(log: (line: string) => void): string | undefined {
  try {
    return readFileSync(BUILT, "utf8");
  } catch {
    log(`edgelm serve: no playground at ${BUILT.pathname} (npm run build makes it); / answers 404`);
    return undefined;
  }
}

const LOCAL = new URL("../../build/local/", import.meta.url);
const TYPES: Record<string, string> = { js: "text/javascript; charset=utf-8", wasm: "application/wasm" };

/** edgelm/local's worker script and kernels for the page's "on this device" mode (served at /local/). */
export function localPageAssets(): PageAssets {
  try {
    const names = readdirSync(LOCAL).filter((n) => /^(edgelm-local-worker\.js|kernels-[\w-]+\.wasm)$/.test(n));
    return Object.fromEntries(names.map((n) => [n, { type: TYPES[n.split(".").pop()!], body: new Uint8Array(readFileSync(new URL(n, LOCAL))) }]));
  } catch {
    return {};
  }
}
