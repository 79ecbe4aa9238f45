/**
 * HTTP range and validator rules for serving one file (RFC 9110 §13–14): one `bytes=` range,
 * strong ETags for If-Range, weak comparison for If-None-Match. Pure functions, so both hosts
 * answer a download the same way whatever stores the bytes.
 */

export type RangeAnswer =
  /** No Range header, or one we must ignore (bad syntax, another unit): the whole file, 200. */
  | { kind: "full" }
  /** Bytes start..end inclusive, 206. */
  | { kind: "partial"; start: number; end: number }
  /** 416: the range lies past the end of the file. */
  | { kind: "unsatisfiable" }
  /** 416 as well: several ranges in one request would need a multipart body, which we do not send. */
  | { kind: "multiple" };

/** What `Range: <header>` asks of a file of `size` bytes. */
export function parseRange(header: string | null, size: number): RangeAnswer {
  if (header === null) return { kind: "full" };
  const m = header.trim().match(/^bytes\s*=\s*(.+)$/i);
  if (!m) return { kind: "full" };
  const specs = m[1].split(",").map((s) => s.trim()).filter(Boolean);
  if (specs.length === 0) return { kind: "full" };
  const ranges: { start: number; end: number }[] = [];
  for (const spec of specs) {
    const r = spec.match(/^(\d*)\s*-\s*(\d*)$/);
    if (!r || (r[1] === "" && r[2] === "")) return { kind: "full" };
    if (r[1] === "") {
      // A suffix: the last n bytes.
      const n = Number(r[2]);
      if (n > 0 && size > 0) ranges.push({ start: Math.max(0, size - n), end: size - 1 });
      continue;
    }
    const start = Number(r[1]);
    const end = r[2] === "" ? Infinity : Number(r[2]);
    if (end < start) return { kind: "full" };
    if (start < size) ranges.push({ start, end: Math.min(end, size - 1) });
  }
  if (specs.length > 1) return ranges.length ? { kind: "multiple" } : { kind: "unsatisfiable" };
  return ranges.length ? { kind: "partial", ...ranges[0] } : { kind: "unsatisfiable" };
}

const opaque = (tag: string) => tag.replace(/^W\//, "");

/** If-None-Match: does the client's copy match (weak comparison; `*` matches any existing file)? */
export function noneMatchHits(header: string | null, etag: string): boolean {
  if (header === null) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((t) => opaque(t.trim()) === opaque(etag));
}

/**
 * If-Range: may the Range header be honoured? Only when the client names this file's current
 * strong ETag; a date or any other tag means its partial copy may be stale, so it gets the whole file.
 */
export function ifRangeAllows(header: string | null, etag: string): boolean {
  if (header === null) return true;
  const t = header.trim();
  return !t.startsWith("W/") && !etag.startsWith("W/") && t === etag;
}
