/**
 * Chromium for the browser tests: Debian's package (`apt-get install chromium`, which .ci/run does),
 * driven by playwright-core; nothing is downloaded. Under CI=true a browser that cannot start fails
 * the suite; elsewhere the suite is skipped with the reason, so `npm test` still runs on a machine
 * without Chromium.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

const CANDIDATES = [process.env.EDGELM_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].filter((p): p is string => !!p);

/** The browser's path, or why there is none. */
export function chromiumPath(): { path?: string; why?: string } {
  const path = CANDIDATES.find((p) => existsSync(p));
  if (path) return { path };
  return { why: `no Chromium at ${CANDIDATES.join(", ")} (apt-get install -y chromium, or set EDGELM_CHROMIUM)` };
}

/** Whether the browser suites run here: always under CI (where a missing browser is a failure). */
export const BROWSER_TESTS = process.env.CI === "true" || chromiumPath().path !== undefined;

export async function launchChromium(): Promise<Browser> {
  const { path, why } = chromiumPath();
  if (!path) throw new Error(why);
  // --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: path, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** Saves a screenshot of a failed test's page under test-results/ (CI keeps the folder). */
export async function screenshotOnFailure(page: Page | undefined, name: string, failed: boolean): Promise<void> {
  if (!page || !failed) return;
  const dir = join(process.cwd(), "test-results");
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name.replace(/[^\w.-]+/g, "_")}.png`), fullPage: true }).catch(() => {});
}
