#!/usr/bin/env node
// Builds the playground (src/playground/) into one self-contained page, build/playground/index.html:
// main.ts and what it imports (edgelm/client) bundled by esbuild and inlined with the stylesheet.
// One file, so the Worker can ship it as a Text module and `edgelm serve` can read it from disk,
// and the page needs no second request. Run by `npm run build` and by `npm ci` (prepare).
// Exits non-zero on any build error.
import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "src", "playground");
const out = join(root, "build", "playground", "index.html");

const bundle = await build({
  entryPoints: [join(src, "main.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  write: false,
  logLevel: "warning",
});
// Inside an inline <script>, "</script" would end the element early, wherever it appears.
const script = bundle.outputFiles[0].text.replace(/<\/(script)/gi, "<\\/$1");
const template = readFileSync(join(src, "index.html"), "utf8");
for (const marker of ["/*STYLE*/", "/*SCRIPT*/"]) {
  if (!template.includes(marker)) throw new Error(`src/playground/index.html lacks the ${marker} marker`);
}
// Functions as replacements: "$&" and friends in the code must stay literal.
const html = template.replace("/*STYLE*/", () => readFileSync(join(src, "style.css"), "utf8")).replace("/*SCRIPT*/", () => script);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, html);
console.log(`build-playground: ${out} (${(html.length / 1024).toFixed(1)} KiB)`);
