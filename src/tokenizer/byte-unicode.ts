/**
 * GPT-2's reversible byte ↔ printable-character map (docs/model.md, Decoding). GGUF and HF tokenizer.json store
 * byte-level tokens in this form so every token is a printable string without spaces, which is what
 * lets a merge line be written as "left right".
 */

const byteToChar: string[] = new Array(256);
const charToByte = new Map<number, number>();

{
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const cp = printable(b) ? b : next++;
    byteToChar[b] = String.fromCharCode(cp);
    charToByte.set(cp, b);
  }
}

/** Raw bytes held as a binary string (one char per byte, 0..255) → GPT-2 byte-unicode form. */
export function binaryToUnicodeToken(bin: string): string {
  let out = "";
  for (let i = 0; i < bin.length; i++) out += byteToChar[bin.charCodeAt(i)];
  return out;
}

/** GPT-2 byte-unicode token → binary string; undefined if a character is outside the map. */
export function unicodeTokenToBinary(token: string): string | undefined {
  let out = "";
  for (let i = 0; i < token.length; i++) {
    const b = charToByte.get(token.charCodeAt(i));
    if (b === undefined) return undefined;
    out += String.fromCharCode(b);
  }
  return out;
}
