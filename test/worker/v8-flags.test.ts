/**
 * The config rewrite that gives Miniflare's workerd V8 flags: checked through a flag a Worker can
 * see (`--expose-gc` defines `gc`), before and after the hook, with a flag before it in the list
 * so a list of several is decoded, in real workerd.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Miniflare, serializeConfig } from "miniflare";
import { localWorkerdV8Flags, useWorkerdV8Flags, withV8Flags } from "./v8-flags";

const SCRIPT = `export default { fetch() { return new Response(typeof globalThis.gc); } };`;

let mf: Miniflare | undefined;
afterEach(async () => {
  await mf?.dispose();
  mf = undefined;
});

async function typeofGc(): Promise<string> {
  mf = new Miniflare({ modules: true, script: SCRIPT, compatibilityDate: "2026-04-20" });
  const res = await mf.dispatchFetch("http://localhost/");
  return res.text();
}

describe("workerd V8 flags through Miniflare", () => {
  it("reach V8: gc is undefined without --expose-gc, a function with it (second of two flags)", async () => {
    expect(await typeofGc()).toBe("undefined");
    await mf!.dispose();
    useWorkerdV8Flags(["--single-threaded-gc", "--expose-gc"]);
    expect(await typeofGc()).toBe("function");
  });

  it("refuses a config that already sets v8Flags, and a buffer that is not a message", () => {
    const once = withV8Flags(serializeConfig({ services: [] }), ["--expose-gc"]);
    expect(() => withV8Flags(once, ["--expose-gc"])).toThrow(/already sets v8Flags/);
    expect(() => withV8Flags(new Uint8Array(24), ["--expose-gc"])).toThrow(/not an unpacked Cap'n Proto message/);
  });

  it("defaults to --single-threaded-gc; EDGELM_WORKERD_V8_FLAGS replaces it (empty: none)", () => {
    const saved = process.env.EDGELM_WORKERD_V8_FLAGS;
    try {
      delete process.env.EDGELM_WORKERD_V8_FLAGS;
      expect(localWorkerdV8Flags()).toEqual(["--single-threaded-gc"]);
      process.env.EDGELM_WORKERD_V8_FLAGS = "";
      expect(localWorkerdV8Flags()).toEqual([]);
      process.env.EDGELM_WORKERD_V8_FLAGS = " --a  --b ";
      expect(localWorkerdV8Flags()).toEqual(["--a", "--b"]);
    } finally {
      if (saved === undefined) delete process.env.EDGELM_WORKERD_V8_FLAGS;
      else process.env.EDGELM_WORKERD_V8_FLAGS = saved;
    }
  });
});
