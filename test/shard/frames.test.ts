/**
 * The batched frame encoding (src/shard/protocol.ts): a run frame's parts and where each part's
 * rows lie in its payload, and bad frames refused with errors that say what is wrong.
 */
import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, runParts, type RunPart } from "../../src/shard/protocol";

const H = 4;

describe("batched run frames", () => {
  it("carry each sequence's part and the concatenated rows; each part's offset points at its own rows", () => {
    const parts: RunPart[] = [
      { seq: "a", pos: 7, n: 1 },
      { seq: "b", pos: 0, n: 3 },
      { seq: "c", pos: 12, n: 2 },
    ];
    // Row r of the frame holds the values 100r..100r+3: every value says which row it is.
    const rows = parts.reduce((a, p) => a + p.n, 0);
    const payload = Float32Array.from({ length: rows * H }, (_, i) => 100 * Math.floor(i / H) + (i % H));
    const { head, payload: got } = decodeFrame<{ op: string; parts: unknown }>(encodeFrame({ op: "run", parts }, payload));
    expect(head.op).toBe("run");
    const decoded = runParts(head.parts, got.length, H);
    expect(decoded).toEqual([
      { seq: "a", pos: 7, n: 1, offset: 0 },
      { seq: "b", pos: 0, n: 3, offset: 4 },
      { seq: "c", pos: 12, n: 2, offset: 16 },
    ]);
    // Part c's rows are the frame's rows 4 and 5.
    const c = decoded[2];
    expect([...got.subarray(c.offset, c.offset + c.n * H)]).toEqual([400, 401, 402, 403, 500, 501, 502, 503]);
  });

  it("a head that does not fit a 4-byte boundary still leaves the payload aligned and whole", () => {
    for (const seq of ["x", "xy", "xyz", "wxyz"]) {
      const frame = encodeFrame({ op: "run", parts: [{ seq, pos: 0, n: 1 }] }, new Float32Array([1, 2, 3, 4]));
      // Any view: RPC may hand the frame over at an odd offset of a bigger buffer.
      const shifted = new Uint8Array(frame.length + 1).subarray(1);
      shifted.set(frame);
      expect([...decodeFrame(shifted).payload]).toEqual([1, 2, 3, 4]);
    }
  });

  const bad: [string, unknown, number, RegExp][] = [
    ["no parts", undefined, 4, /parts must be a non-empty list/],
    ["an empty list", [], 0, /parts must be a non-empty list/],
    ["a part without a sequence", [{ pos: 0, n: 1 }], 4, /part 0 has no sequence id/],
    ["a sequence twice", [{ seq: "a", pos: 0, n: 1 }, { seq: "a", pos: 1, n: 1 }], 8, /sequence a appears twice in one frame/],
    ["a negative position", [{ seq: "a", pos: -1, n: 1 }], 4, /part 0 \(a\): pos must be an integer ≥ 0, got -1/],
    ["a fractional count", [{ seq: "a", pos: 0, n: 1.5 }], 6, /part 0 \(a\): n must be an integer ≥ 1, got 1.5/],
    ["no positions", [{ seq: "a", pos: 0, n: 0 }], 0, /n must be an integer ≥ 1, got 0/],
    ["more rows named than sent", [{ seq: "a", pos: 0, n: 1 }, { seq: "b", pos: 0, n: 2 }], 8, /run: 8 values for 3 positions of 4/],
    ["fewer rows named than sent", [{ seq: "a", pos: 0, n: 1 }], 8, /run: 8 values for 1 positions of 4/],
  ];
  for (const [what, parts, values, message] of bad) {
    it(`refuse ${what}, saying so`, () => {
      expect(() => runParts(parts, values, H)).toThrow(message);
    });
  }
});

describe("bad frames", () => {
  const frame = () => encodeFrame({ op: "logits", n: 1 }, new Float32Array(4));

  it("a size that does not match the header", () => {
    expect(() => decodeFrame(frame().subarray(0, 20))).toThrow(/bad shard frame: 20 bytes, header says/);
  });

  it("a head longer than the frame", () => {
    const f = frame();
    new DataView(f.buffer).setUint32(4, 1000, true);
    expect(() => decodeFrame(f)).toThrow(/bad shard frame: a 1000-byte head does not fit in \d+ bytes/);
  });

  it("a head that is not JSON, or not an object", () => {
    const f = frame();
    f[8] = "}".charCodeAt(0);
    expect(() => decodeFrame(f)).toThrow(/bad shard frame: its head is not JSON/);
    expect(() => decodeFrame(encodeFrame(7 as unknown as object))).toThrow(/its head is not an object/);
  });

  it("a payload that is not whole f32 values", () => {
    const f = frame();
    const g = new Uint8Array(f.length + 2);
    g.set(f);
    new DataView(g.buffer).setUint32(0, g.length, true);
    expect(() => decodeFrame(g)).toThrow(/bad shard frame: 18 payload bytes are not whole f32 values/);
  });
});
