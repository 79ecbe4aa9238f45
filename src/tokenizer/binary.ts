/**
 * Byte strings are carried as "binary strings" (one UTF-16 unit per byte, 0..255) because V8 hashes
 * and slices them far faster than Uint8Arrays, and Map<string, number> then serves as the rank table.
 */

/** UTF-8 bytes of a well-formed JS string, as a binary string. ASCII comes back unchanged. */
export function utf8Binary(s: string): string {
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return s;
  const codes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      codes.push(c);
    } else if (c < 0x800) {
      codes.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    } else {
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const lo = s.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
          i++;
          codes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
          continue;
        }
      }
      // Callers pass well-formed text; a stray surrogate still gets TextEncoder's U+FFFD.
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      codes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
  }
  return binaryFromCodes(codes);
}

function binaryFromCodes(codes: number[]): string {
  let out = "";
  for (let i = 0; i < codes.length; i += 8192) out += String.fromCharCode.apply(null, codes.slice(i, i + 8192));
  return out;
}

export function binaryToBytes(bin: string, out?: Uint8Array, offset = 0): Uint8Array {
  const dst = out ?? new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) dst[offset + i] = bin.charCodeAt(i);
  return dst;
}

/** Lone surrogates → U+FFFD, exactly what TextEncoder (and so every UTF-8 consumer) does. */
export function wellFormed(s: string): string {
  const f = (s as string & { toWellFormed?: () => string }).toWellFormed;
  if (f) return f.call(s);
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}
