/**
 * The integrity manifest written beside a GGUF (`<model>.gguf.manifest.json`, in R2 the model's
 * key + `.manifest.json`): the sha256 of the whole file, of its header (every byte before the
 * tensor data, so a tampered tensor table or tokenizer is caught too) and of each tensor.
 *
 * Host-neutral: hashing goes through WebCrypto (`crypto.subtle`), present in Node 20, workerd and
 * browsers. A loader checks what it reads against the manifest as the bytes arrive — a tensor's
 * hash is taken before the engine repacks it in place — so verifying costs no second pass.
 */

export const MANIFEST_FORMAT = "edgelm-manifest/1";

export interface Digest {
  bytes: number;
  /** Lower-case hex. */
  sha256: string;
}

export interface TensorDigest extends Digest {
  /** Absolute offset of the tensor's first byte in the file. */
  offset: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  file: Digest;
  /** Bytes [0, data offset): magic, metadata, tensor infos and the padding up to the data. */
  header: Digest;
  tensors: Record<string, TensorDigest>;
}

/**
 * What was read is not what the manifest (or a shard plan's hashes) says: a corrupt, truncated or
 * tampered file, or a missing manifest where one is required. The file will not get better by
 * reading it again, so a host does not retry it until the object changes.
 */
export class IntegrityError extends Error {
  override name = "IntegrityError";
}

/**
 * The host requires a manifest (REQUIRE_MANIFEST, --require-manifest) and there is none. Unlike
 * a mismatch this fixes itself once the manifest is uploaded, so the Worker retries it.
 */
export class ManifestMissingError extends IntegrityError {
  override name = "ManifestMissingError";
}

/** What /health says of a load that failed for `err`; undefined when integrity had no part in it. */
export function integrityOfFailure(err: unknown): "failed" | "unverified" | undefined {
  if (err instanceof ManifestMissingError) return "unverified";
  if (err instanceof IntegrityError) return "failed";
  return undefined;
}

/** Where the manifest of a model file or object key lives. */
export const manifestPathFor = (model: string): string => `${model}.manifest.json`;

const HEX = /^[0-9a-f]{64}$/;

function digestOf(v: unknown, where: string, withOffset: false): Digest;
function digestOf(v: unknown, where: string, withOffset: true): TensorDigest;
function digestOf(v: unknown, where: string, withOffset: boolean): Digest | TensorDigest {
  const o = v as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null) throw new IntegrityError(`${where} must be an object`);
  const count = (k: string) => {
    const n = o[k];
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new IntegrityError(`${where}.${k} must be a non-negative integer, got ${JSON.stringify(n)}`);
    return n;
  };
  if (typeof o.sha256 !== "string" || !HEX.test(o.sha256)) throw new IntegrityError(`${where}.sha256 must be 64 lower-case hex digits`);
  const d: Digest = { bytes: count("bytes"), sha256: o.sha256 };
  return withOffset ? { offset: count("offset"), ...d } : d;
}

/** Parses and checks a manifest's JSON; `where` names it in errors (a path or an object key). */
export function parseManifest(text: string, where: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new IntegrityError(`the manifest ${where} is not valid JSON: ${(e as Error).message}`);
  }
  const o = raw as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null) throw new IntegrityError(`the manifest ${where} is not a JSON object`);
  if (o.format !== MANIFEST_FORMAT) throw new IntegrityError(`the manifest ${where} has format ${JSON.stringify(o.format)}, expected "${MANIFEST_FORMAT}"`);
  if (typeof o.tensors !== "object" || o.tensors === null || Array.isArray(o.tensors)) throw new IntegrityError(`the manifest ${where}: "tensors" must be an object`);
  // Tensor names are the file's: no prototype, so a tensor called "__proto__" or "constructor" is just a name.
  const tensors: Record<string, TensorDigest> = Object.create(null);
  for (const [name, t] of Object.entries(o.tensors)) tensors[name] = digestOf(t, `tensors["${name}"]`, true);
  return { format: MANIFEST_FORMAT, file: digestOf(o.file, "file", false), header: digestOf(o.header, "header", false), tensors };
}

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i].toString(16).padStart(2, "0");
  return s;
}

/** sha256 of `bytes`, hex. Await it before the bytes are rewritten (a tensor repacked in place). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** A hash in log lines and errors: enough to tell two apart, short enough to read. */
export const hashPrefix = (hex: string): string => `${hex.slice(0, 12)}…`;

/**
 * Checks one load against a manifest. Each check throws an IntegrityError naming what differs
 * (the tensor, expected and actual hash prefixes) and the manifest it came from.
 */
export class ManifestCheck {
  constructor(
    readonly manifest: Manifest,
    /** The manifest's path or key, for messages. */
    readonly where: string,
  ) {}

  private fail(what: string): never {
    throw new IntegrityError(`integrity check failed: ${what} (manifest ${this.where}); the model is not served`);
  }

  /** The file's size, when the source knows it: a short object is refused before a byte is parsed. */
  size(bytes: number): void {
    const want = this.manifest.file.bytes;
    if (bytes < want) this.fail(`the file is ${bytes} bytes, ${want - bytes} fewer than the manifest's ${want}: truncated`);
    if (bytes > want) this.fail(`the file is ${bytes} bytes, the manifest says ${want}`);
  }

  /** The header's length (the file's data offset). */
  headerLength(bytes: number): void {
    const want = this.manifest.header.bytes;
    if (bytes !== want) this.fail(`the header is ${bytes} bytes, the manifest says ${want}`);
  }

  /** The header's bytes, [0, data offset). */
  async header(bytes: Uint8Array): Promise<void> {
    this.headerLength(bytes.length);
    this.compare("the header", this.manifest.header.sha256, await sha256Hex(bytes));
  }

  /** The digest the manifest gives a tensor at `offset` (absolute): it must list it, at that place. */
  expect(name: string, offset: number, bytes: number): TensorDigest {
    const want = Object.hasOwn(this.manifest.tensors, name) ? this.manifest.tensors[name] : undefined;
    if (!want) this.fail(`tensor ${name} is not in the manifest`);
    if (want.offset !== offset || want.bytes !== bytes) this.fail(`tensor ${name} is ${bytes} bytes at offset ${offset}, the manifest says ${want.bytes} at ${want.offset}`);
    return want;
  }

  /** A tensor's bytes as read, before anything rewrites them. */
  async tensor(name: string, offset: number, bytes: Uint8Array): Promise<void> {
    const want = this.expect(name, offset, bytes.length);
    this.tensorHash(name, want, await sha256Hex(bytes));
  }

  /** A tensor hashed by the caller (Node hashes piece by piece as a file is read). */
  tensorHash(name: string, want: TensorDigest, got: string): void {
    this.compare(`tensor ${name}`, want.sha256, got);
  }

  private compare(what: string, want: string, got: string): void {
    if (want !== got) this.fail(`${what}: sha256 ${hashPrefix(got)} does not match the manifest's ${hashPrefix(want)}`);
  }
}
