import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hubRequest } from "../../weights-tools/hub-request";

/** Two loopback origins: "hub" redirects as the test path says, "cdn" answers 200. */
const seen: { server: string; method: string; path: string; auth?: string; range?: string }[] = [];
let hub: Server;
let cdn: Server;
let hubUrl: string;
let cdnUrl: string;

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<[Server, string]> {
  const s = createServer(handler);
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  return [s, `http://127.0.0.1:${(s.address() as AddressInfo).port}`];
}

beforeAll(async () => {
  [cdn, cdnUrl] = await listen((req, res) => {
    seen.push({ server: "cdn", method: req.method!, path: req.url!, auth: req.headers.authorization, range: req.headers.range });
    res.writeHead(200).end("cdn");
  });
  [hub, hubUrl] = await listen((req, res) => {
    seen.push({ server: "hub", method: req.method!, path: req.url!, auth: req.headers.authorization, range: req.headers.range });
    const to: Record<string, [number, string]> = {
      "/renamed": [307, "/moved"],
      "/to-cdn": [302, `${cdnUrl}/blob`],
      "/renamed-to-cdn": [301, "/to-cdn"],
      "/post-303": [303, "/moved"],
      "/loop": [302, "/loop"],
    };
    const r = to[req.url!];
    if (r) res.writeHead(r[0], { location: r[1], "x-linked-etag": '"abc"' }).end();
    else res.writeHead(200).end(`hub ${req.method}`);
  });
});

afterAll(async () => {
  await Promise.all([new Promise((ok) => hub.close(ok)), new Promise((ok) => cdn.close(ok))]);
});

beforeEach(() => {
  seen.length = 0;
});

describe("hubRequest", () => {
  it("keeps the token and the Range on same-origin hops", async () => {
    const res = await hubRequest(`${hubUrl}/renamed`, { token: "t", headers: { range: "bytes=5-" } });
    expect(await res.text()).toBe("hub GET");
    expect(seen).toEqual([
      { server: "hub", method: "GET", path: "/renamed", auth: "Bearer t", range: "bytes=5-" },
      { server: "hub", method: "GET", path: "/moved", auth: "Bearer t", range: "bytes=5-" },
    ]);
  });

  it("drops the token, not the Range, on a hop to another origin", async () => {
    const res = await hubRequest(`${hubUrl}/renamed-to-cdn`, { token: "t", headers: { range: "bytes=5-" } });
    expect(await res.text()).toBe("cdn");
    expect(seen.map((s) => [s.server, s.path, s.auth, s.range])).toEqual([
      ["hub", "/renamed-to-cdn", "Bearer t", "bytes=5-"],
      ["hub", "/to-cdn", "Bearer t", "bytes=5-"],
      ["cdn", "/blob", undefined, "bytes=5-"],
    ]);
  });

  it("with crossOrigin false, stops at the redirect to another origin and returns it", async () => {
    const res = await hubRequest(`${hubUrl}/renamed-to-cdn`, { method: "HEAD", token: "t", crossOrigin: false });
    expect(res.status).toBe(302);
    expect(res.headers.get("x-linked-etag")).toBe('"abc"');
    expect(seen.map((s) => s.server)).toEqual(["hub", "hub"]);
  });

  it("turns a POST into a GET on 303, and gives up on a redirect loop", async () => {
    const res = await hubRequest(`${hubUrl}/post-303`, { method: "POST", body: "{}" });
    expect(await res.text()).toBe("hub GET");
    await expect(hubRequest(`${hubUrl}/loop`)).rejects.toThrow(/more than 10 redirects/);
  });
});
