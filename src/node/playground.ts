/**
 * The playground page for `edgelm serve`: the same built file the Worker ships
 * (scripts/build-playground.mjs), read once at start. Without a build, `/` stays a 404.
 */
import { readFileSync } from "node:fs";

const BUILT = new URL("../../build/playground/index.html", import.meta.url);

export function playgroundPage(log: (line: string) => void): string | undefined {
  try {
    return readFileSync(BUILT, "utf8");
  } catch {
    log(`edgelm serve: no playground at ${BUILT.pathname} (npm run build makes it); / answers 404`);
    return undefined;
  }
}
