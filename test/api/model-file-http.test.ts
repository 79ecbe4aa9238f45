/** GET /v1/models/{id}/file at `edgelm serve`: the GGUF from disk, only with --serve-model-file. */
import { afterAll, beforeAll, describe, it } from "vitest";
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { expectFileRouteOff, modelFileChecks } from "../helpers/model-file-checks";

let on: RunningServer;
let off: RunningServer;
let path: string;

beforeAll(async () => {
  path = await synthGGUF("tiny", "q4_0");
  const common = { modelPath: path, port: 0, engine: "ref" as const, corsOrigins: ["https://app.example"], log: () => {} };
  on = await startServer({ ...common, serveModelFile: true });
  off = await startServer(common);
});
afterAll(async () => {
  await Promise.all([on?.close(), off?.close()]);
});

describe("edgelm serve: the model file from disk", () => {
  // The id defaults to the file name without .gguf, as for requests.
  modelFileChecks(() => ({ url: on.url, id: path.split("/").pop()!.replace(/\.gguf$/, ""), path, headers: {} }));

  it("is off without --serve-model-file: 404 naming the flag", async () => {
    await expectFileRouteOff(off.url, "anything");
  });
});
