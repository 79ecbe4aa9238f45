/**
 * GET /v1/models/{id}/file at the Worker in workerd: the GGUF from local R2 (ETag from R2),
 * behind the API key, and off unless SERVE_MODEL_FILE=true.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectFileRouteOff, modelFileChecks } from "../helpers/model-file-checks";
import { startWorker, testModelPath, type WorkerUnderTest } from "./harness";

const KEY = "sk-edgelm-test-file-0001";
const VARS = {
  MODEL_KEY: "models/tiny-q4_0.gguf",
  MODEL_ID: "edgelm-tiny",
  CORS_ORIGINS: "https://app.example",
  API_KEYS: JSON.stringify({ [KEY]: "free" }),
  SERVE_MODEL_FILE: "true",
};

let on: WorkerUnderTest;
let off: WorkerUnderTest;
let path: string;

beforeAll(async () => {
  path = await testModelPath();
  [on, off] = await Promise.all([startWorker({ vars: VARS, r2Model: path }), startWorker({ vars: { ...VARS, SERVE_MODEL_FILE: "" }, r2Model: path })]);
}, 120_000);

afterAll(async () => {
  await Promise.all([on?.close(), off?.close()]);
});

describe("Worker: the model file from R2", () => {
  modelFileChecks(() => ({ url: on.url, id: VARS.MODEL_ID, path, headers: { authorization: `Bearer ${KEY}` } }));

  it("needs the API key when keys are set", async () => {
    const res = await fetch(`${on.url}/v1/models/${VARS.MODEL_ID}/file`, { headers: { range: "bytes=0-3" } });
    expect(res.status).toBe(401);
  });

  it("the ETag is R2's", async () => {
    const obj = await (await on.mf.getR2Bucket("MODELS")).head(VARS.MODEL_KEY);
    const res = await fetch(`${on.url}/v1/models/${VARS.MODEL_ID}/file`, { method: "HEAD", headers: { authorization: `Bearer ${KEY}` } });
    expect(res.headers.get("etag")).toBe(obj!.httpEtag);
  });

  it("is off unless SERVE_MODEL_FILE=true: 404 naming the var", async () => {
    await expectFileRouteOff(off.url, VARS.MODEL_ID, { authorization: `Bearer ${KEY}` });
  });
});
