/**
 * docs/playground.png: the playground of a running server (default `npm start`'s, on :8787) in
 * headless Chromium, after one streamed completion. Uses the browser tests' launcher.
 *
 *   node --import tsx scripts/playground-screenshot.ts [URL] [--out FILE] [--prompt TEXT] [--key KEY]
 */
import { parseArgs } from "node:util";
import { launchChromium } from "../test/helpers/browser";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { out: { type: "string", default: "docs/playground.png" }, prompt: { type: "string", default: "The lighthouse keeper opened the door and" }, key: { type: "string" } },
});
const url = positionals[0] ?? "http://127.0.0.1:8787/";

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 960, height: 640 }, deviceScaleFactor: 1, colorScheme: "light" });
  if (values.key) await page.addInitScript((k) => sessionStorage.setItem("edgelm.apiKey", k), values.key);
  await page.goto(url);
  await page.fill("#prompt", values.prompt!);
  await page.fill("#max-tokens", "48");
  await page.fill("#seed", "42");
  await page.click("#run");
  await page.waitForSelector("#status:text-matches('^done')", { timeout: 120_000 });
  await page.screenshot({ path: values.out, fullPage: true });
  console.log(`playground-screenshot: ${values.out} from ${url}`);
} finally {
  await browser.close();
}
