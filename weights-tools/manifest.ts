/**
 * Writes a GGUF's integrity manifest beside it (src/gguf/manifest.ts has the format): one
 * streaming pass over the file feeds the whole-file hash, the header's and each tensor's, so a
 * 1 GB model is read once and never held. `convert`, `synth` and `download` call this after the
 * GGUF is in place.
 */
import { createHash, type Hash } from "node:crypto";
import { rm } from "node:fs/promises";
import { openGGUF, openModelFile, writeAtomically } from "../src/gguf/node";
import { MANIFEST_FORMAT, manifestPathFor, type Manifest, type TensorDigest } from "../src/gguf/manifest";

const CHUNK = 4 << 20;

/** A byte range of the file and the hash its bytes feed. */
interface Span {
  start: number;
  end: number;
  hash: Hash;
}

/** Computes the manifest of the GGUF at `ggufPath` and writes it to `<ggufPath>.manifest.json` (atomically). */
export async function writeManifest(ggufPath: string): Promise<Manifest> {
  const manifest = await computeManifest(ggufPath);
  const text = `${JSON.stringify(manifest, null, 1)}\n`;
  await writeAtomically(manifestPathFor(ggufPath), (put) => put(new TextEncoder().encode(text)).then(() => {}));
  return manifest;
}

/** A manifest that no longer describes its GGUF must not outlive it: removed before the GGUF is rewritten. */
export async function removeManifest(ggufPath: string): Promise<void> {
  await rm(manifestPathFor(ggufPath), { force: true });
}

export async function computeManifest(ggufPath: string): Promise<Manifest> {
  const gguf = await openGGUF(ggufPath);
  await gguf.close();
  const { handle, size } = await openModelFile(ggufPath);
  try {
    const file = createHash("sha256");
    const spans: Span[] = [{ start: 0, end: gguf.dataOffset, hash: createHash("sha256") }];
    const byName = new Map<string, Span>();
    for (const t of [...gguf.tensors].sort((a, b) => a.offset - b.offset)) {
      const start = gguf.dataOffset + t.offset;
      const span = { start, end: start + t.byteLength, hash: createHash("sha256") };
      spans.push(span);
      byName.set(t.name, span);
    }
    // Spans are in file order and do not overlap (the GGUF reader refuses overlaps), so one cursor walks them.
    let next = 0;
    const buf = new Uint8Array(CHUNK);
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(CHUNK, size - pos), pos);
      if (bytesRead === 0) throw new Error(`${ggufPath}: ended at ${pos} of ${size} bytes while hashing (changed while being read?)`);
      const chunk = buf.subarray(0, bytesRead);
      file.update(chunk);
      const end = pos + bytesRead;
      for (let i = next; i < spans.length && spans[i].start < end; i++) {
        const s = spans[i];
        const a = Math.max(s.start, pos);
        const b = Math.min(s.end, end);
        if (b > a) s.hash.update(chunk.subarray(a - pos, b - pos));
        if (s.end <= end) next = i + 1;
      }
      pos = end;
    }
    const tensors: Record<string, TensorDigest> = Object.create(null);
    for (const t of gguf.tensors) {
      const s = byName.get(t.name)!;
      tensors[t.name] = { offset: s.start, bytes: s.end - s.start, sha256: s.hash.digest("hex") };
    }
    return {
      format: MANIFEST_FORMAT,
      file: { bytes: size, sha256: file.digest("hex") },
      header: { bytes: gguf.dataOffset, sha256: spans[0].hash.digest("hex") },
      tensors,
    };
  } finally {
    await handle.close();
  }
}
