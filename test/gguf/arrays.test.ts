/** Metadata arrays: the buffered fast path decodes exactly as the plain one, and `skipArrays` walks them with the same checks. */
import { describe, expect, it } from "vitest";
import { f32Array, i32Array, str, strArray, u32 } from "../../src/gguf/metadata";
import { quantize } from "../../src/gguf/quant";
import { parseHeader } from "../../src/gguf/reader";
import { BufferSource, StreamSource } from "../../src/gguf/source";
import { TensorType, ValueType, type MetaValue } from "../../src/gguf/types";
import { encodeGGUF } from "../../src/gguf/writer";

/** Tokenizer-like arrays (strings of every UTF-8 length, ints, nested) between scalars, and two tensors. */
const words = Array.from({ length: 3000 }, (_, i) => ["tök", "Ġthe", "日本", "🦙", "", "x".repeat(70 + (i % 5)), "é".repeat(40)][i % 7] + i);

async function withArrays(): Promise<Uint8Array> {
  const metadata = new Map<string, MetaValue>([
    ["general.architecture", str("stablelm")],
    ["tokenizer.ggml.tokens", strArray(words)],
    ["stablelm.block_count", u32(2)],
    ["tokenizer.ggml.token_type", i32Array(Array.from({ length: 3000 }, (_, i) => (i % 3) - 1))],
    ["nested", { type: ValueType.ARRAY, itemType: ValueType.ARRAY, value: [f32Array([1, 2.5]), strArray(["a", "b"])] } as MetaValue],
    ["general.alignment", u32(64)],
  ]);
  return encodeGGUF({
    metadata,
    tensors: [
      { name: "a", dims: [64, 3], type: TensorType.Q4_0, data: quantize(TensorType.Q4_0, new Float32Array(192).fill(0.5)) },
      { name: "b", dims: [5], type: TensorType.F32, data: quantize(TensorType.F32, new Float32Array(5)) },
    ],
  });
}

/** The same bytes as a stream of small odd-sized chunks: items straddle chunk edges. */
function chunked(bytes: Uint8Array, size = 97): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

describe("metadata arrays", () => {
  it("decode the same whether items straddle buffer edges or not", async () => {
    const bytes = await withArrays();
    const whole = await parseHeader(new BufferSource(bytes));
    const pieces = await parseHeader(new StreamSource(chunked(bytes)));
    expect(pieces.metadata).toEqual(whole.metadata);
    expect(whole.metadata.get("tokenizer.ggml.tokens")!.value).toEqual(words);
  });

  it("skipArrays gives the same tensors, offsets and scalar metadata, without the arrays", async () => {
    const bytes = await withArrays();
    const full = await parseHeader(new BufferSource(bytes));
    for (const src of [new BufferSource(bytes), new StreamSource(chunked(bytes))]) {
      const fast = await parseHeader(src, { skipArrays: true });
      expect(fast.dataOffset).toBe(full.dataOffset);
      expect(fast.totalSize).toBe(full.totalSize);
      expect(fast.alignment).toBe(full.alignment);
      expect(fast.tensors).toEqual(full.tensors);
      expect([...fast.metadata]).toEqual([...full.metadata].filter(([, v]) => v.type !== ValueType.ARRAY));
    }
  });

  it("both paths fail clearly on truncation and on invalid UTF-8", async () => {
    const bytes = await withArrays();
    const full = await parseHeader(new BufferSource(bytes));
    for (const skipArrays of [false, true]) {
      for (const cut of [10, 100, 5000, full.dataOffset - 40]) {
        await expect(parseHeader(new BufferSource(bytes.subarray(0, cut)), { skipArrays })).rejects.toThrow(/truncated|past the end|not a GGUF file/);
      }
      await expect(parseHeader(new BufferSource(bytes.subarray(0, full.totalSize - 1)), { skipArrays })).rejects.toThrow(/out of bounds/);
    }
    const bad = bytes.slice();
    const at = Buffer.from(bad).indexOf("tök0");
    bad[at + 1] = 0xff; // inside the first token
    await expect(parseHeader(new BufferSource(bad))).rejects.toThrow(/tokenizer\.ggml\.tokens: string is not valid UTF-8/);
    await expect(parseHeader(new StreamSource(chunked(bad)))).rejects.toThrow(/not valid UTF-8/);
  });
});
