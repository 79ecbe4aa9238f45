/**
 * A JSON Schema subset compiled to the constraint grammar (grammar.ts). Unsupported keywords are an
 * error naming their path, never ignored; annotations are accepted and ignored. Compiled schemas
 * are cached by their JSON text, so a schema seen before costs a map lookup.
 * docs/structured-output.md lists the subset and the choices made where the standard leaves room.
 */
import { alt, bytesOf, LIMITS, lit, NEVER, node, type GNode, type Prop } from "./grammar";
import { compileRegex, RegexError } from "./json-regex";

export class SchemaError extends Error {
  override name = "SchemaError";
  constructor(
    /** A JSON Pointer into the schema, e.g. "#/properties/name/format". */
    readonly path: string,
    message: string,
    readonly code = "invalid_schema",
  ) {
    super(message);
  }
}

const ANNOTATIONS = new Set(["title", "description", "$schema", "$id", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"]);
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"] as const;
type TypeName = (typeof TYPES)[number];

/** Keywords each type reads; the generic ones are allowed with any type. */
const BY_TYPE: Record<TypeName, string[]> = {
  object: ["properties", "required", "additionalProperties"],
  array: ["items", "minItems", "maxItems"],
  string: ["minLength", "maxLength", "pattern"],
  number: ["minimum", "maximum"],
  integer: ["minimum", "maximum"],
  boolean: [],
  null: [],
};
const GENERIC = ["type", "enum", "const", "anyOf", "$ref", "$defs", "definitions"];
const KNOWN = new Set([...GENERIC, ...Object.values(BY_TYPE).flat()]);

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const esc = (k: string) => k.replace(/~/g, "~0").replace(/\//g, "~1");

class Compiler {
  private nodes = 0;
  /** Expansions of each $ref on the current path. */
  private readonly refDepth = new Map<string, number>();

  constructor(private readonly root: Json) {}

  fail(path: string, msg: string, code?: string): never {
    throw new SchemaError(path, msg, code);
  }

  count(path: string): void {
    if (++this.nodes > LIMITS.nodes) this.fail(path, `the schema compiles to more than ${LIMITS.nodes} grammar nodes; simplify it or lower the $ref depth`);
  }

  compile(s: unknown, path: string): GNode {
    this.count(path);
    if (s === true) return node({ k: "any" });
    if (s === false) return NEVER;
    if (!isObj(s)) this.fail(path, "a schema must be an object or a boolean", "invalid_type");
    for (const key of Object.keys(s)) {
      if (ANNOTATIONS.has(key)) continue;
      if (!KNOWN.has(key)) this.fail(`${path}/${esc(key)}`, `the keyword "${key}" is not supported`, "unsupported_schema_keyword");
    }
    if (s.$ref !== undefined) return this.ref(s, path);
    if (s.anyOf !== undefined) return this.anyOf(s, path);
    if (s.const !== undefined) return this.literals([s.const], s, path);
    if (s.enum !== undefined) {
      if (!Array.isArray(s.enum) || s.enum.length === 0) this.fail(`${path}/enum`, "enum must be a non-empty array");
      return this.literals(s.enum, s, path);
    }
    const types = this.types(s, path);
    if (!types) return node({ k: "any" });
    this.checkKeywords(s, types, path);
    return alt(types.map((t) => this.typed(t, s, path)));
  }

  /** The types a schema allows; undefined for any value. */
  private types(s: Json, path: string): TypeName[] | undefined {
    const t = s.type;
    if (t === undefined) {
      // No type: the keywords present say which kinds are meant; none means any value.
      const implied = TYPES.filter((name) => name !== "integer" && BY_TYPE[name].some((k) => s[k] !== undefined));
      return implied.length ? implied : undefined;
    }
    const list = Array.isArray(t) ? t : [t];
    if (list.length === 0) this.fail(`${path}/type`, "type must not be an empty array");
    for (const x of list) if (!(TYPES as readonly unknown[]).includes(x)) this.fail(`${path}/type`, `unknown type ${JSON.stringify(x)}`);
    return list as TypeName[];
  }

  private checkKeywords(s: Json, types: TypeName[], path: string): void {
    const allowed = new Set(types.flatMap((t) => BY_TYPE[t]));
    for (const key of Object.keys(s)) {
      if (ANNOTATIONS.has(key) || GENERIC.includes(key)) continue;
      if (!allowed.has(key)) this.fail(`${path}/${esc(key)}`, `the keyword "${key}" does not apply to type ${types.join("|")}`);
    }
  }

  private typed(t: TypeName, s: Json, path: string): GNode {
    switch (t) {
      case "null":
        return lit("null");
      case "boolean":
        return alt([lit("true"), lit("false")]);
      case "integer":
      case "number": {
        const min = this.num(s, "minimum", path) ?? -Infinity;
        const max = this.num(s, "maximum", path) ?? Infinity;
        if (min > max || (t === "integer" && Math.ceil(min) > Math.floor(max))) this.fail(`${path}/minimum`, "minimum is above maximum: no number fits");
        return node({ k: "number", integer: t === "integer", min, max });
      }
      case "string": {
        const min = this.count0(s, "minLength", path) ?? 0;
        const max = this.count0(s, "maxLength", path) ?? Infinity;
        if (min > max) this.fail(`${path}/minLength`, "minLength is above maxLength");
        if (s.pattern === undefined) return node({ k: "string", min, max });
        if (typeof s.pattern !== "string") this.fail(`${path}/pattern`, "pattern must be a string", "invalid_type");
        if (s.minLength !== undefined) this.fail(`${path}/minLength`, "minLength together with pattern is not supported: put the length in the pattern");
        try {
          return node({ k: "string", min: 0, max, re: compileRegex(s.pattern) });
        } catch (err) {
          if (err instanceof RegexError) this.fail(`${path}/pattern`, `pattern: ${err.message}`, "unsupported_pattern");
          throw err;
        }
      }
      case "array": {
        const min = this.count0(s, "minItems", path) ?? 0;
        const max = this.count0(s, "maxItems", path) ?? Infinity;
        if (min > max) this.fail(`${path}/minItems`, "minItems is above maxItems");
        if (Array.isArray(s.items)) this.fail(`${path}/items`, "tuple items (an array) are not supported: give one schema");
        const item = s.items === undefined ? node({ k: "any" }) : this.compile(s.items, `${path}/items`);
        if (item.k === "never") return min > 0 ? NEVER : node({ k: "array", item, min: 0, max: 0 });
        return node({ k: "array", item, min, max });
      }
      case "object":
        return this.object(s, path);
    }
  }

  private object(s: Json, path: string): GNode {
    const ap = s.additionalProperties;
    if (ap !== undefined && ap !== false) this.fail(`${path}/additionalProperties`, "additionalProperties is supported only as false (only declared properties are generated)");
    if (s.properties === undefined) {
      if (s.required !== undefined) this.fail(`${path}/required`, "required needs properties that declare those keys");
      return ap === false ? node({ k: "object", props: [] }) : node({ k: "anyObject" });
    }
    if (!isObj(s.properties)) this.fail(`${path}/properties`, "properties must be an object", "invalid_type");
    const required = s.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) this.fail(`${path}/required`, "required must be an array of strings", "invalid_type");
    for (const r of required as string[]) if (!(r in s.properties)) this.fail(`${path}/required`, `required names "${r}", which properties does not declare`);
    const props: Prop[] = [];
    for (const [key, sub] of Object.entries(s.properties)) {
      const n = this.compile(sub, `${path}/properties/${esc(key)}`);
      const req = (required as string[]).includes(key);
      if (n.k === "never") {
        if (req) return NEVER;
        continue;
      }
      props.push({ key, keyLit: bytesOf(JSON.stringify(key)), node: n, required: req });
    }
    return node({ k: "object", props });
  }

  private literals(values: unknown[], s: Json, path: string): GNode {
    for (const key of Object.keys(s)) {
      if (!ANNOTATIONS.has(key) && key !== "enum" && key !== "const" && key !== "type" && key !== "$defs" && key !== "definitions") this.fail(`${path}/${esc(key)}`, `"${key}" together with enum or const is not supported`);
    }
    return alt(values.map((v) => lit(JSON.stringify(v))));
  }

  private anyOf(s: Json, path: string): GNode {
    for (const key of Object.keys(s)) {
      if (!ANNOTATIONS.has(key) && key !== "anyOf" && key !== "$defs" && key !== "definitions") this.fail(`${path}/${esc(key)}`, `"${key}" beside anyOf is not supported: move it into each alternative`);
    }
    if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) this.fail(`${path}/anyOf`, "anyOf must be a non-empty array");
    const n = alt(s.anyOf.map((x, i) => this.compile(x, `${path}/anyOf/${i}`)));
    return n;
  }

  private ref(s: Json, path: string): GNode {
    for (const key of Object.keys(s)) {
      if (!ANNOTATIONS.has(key) && key !== "$ref" && key !== "$defs" && key !== "definitions") this.fail(`${path}/${esc(key)}`, `"${key}" beside $ref is not supported`);
    }
    const ref = s.$ref;
    if (typeof ref !== "string") this.fail(`${path}/$ref`, "$ref must be a string", "invalid_type");
    const target = this.resolve(ref, `${path}/$ref`);
    const depth = this.refDepth.get(ref) ?? 0;
    // A recursive schema is unrolled this many levels; deeper, the reference admits nothing, so an
    // optional recursive part simply stops (a required one makes the schema unsatisfiable).
    if (depth >= LIMITS.refDepth) return NEVER;
    this.refDepth.set(ref, depth + 1);
    try {
      return this.compile(target, ref);
    } finally {
      this.refDepth.set(ref, depth);
    }
  }

  private resolve(ref: string, path: string): unknown {
    if (ref === "#") return this.root;
    const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref);
    if (!m) this.fail(path, `only "#" and "#/$defs/NAME" references are supported, got "${ref}"`);
    const defs = this.root[m[1]];
    const name = m[2].replace(/~1/g, "/").replace(/~0/g, "~");
    if (!isObj(defs) || !(name in defs)) this.fail(path, `"${ref}" does not resolve`);
    return defs[name];
  }

  private num(s: Json, key: string, path: string): number | undefined {
    const v = s[key];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(`${path}/${key}`, `${key} must be a finite number`, "invalid_type");
    return v;
  }

  private count0(s: Json, key: string, path: string): number | undefined {
    const v = s[key];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) this.fail(`${path}/${key}`, `${key} must be a non-negative integer`, "invalid_type");
    return v;
  }
}

const cache = new Map<string, GNode>();
const CACHE_SIZE = 64;

/** The grammar of a schema; cached by the schema's JSON text (most recent kept). */
export function compileSchema(schema: object): GNode {
  const key = JSON.stringify(schema);
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const root = schema as Json;
  const n = new Compiler(root).compile(root, "#");
  if (n.k === "never") throw new SchemaError("#", "the schema accepts no value");
  cache.set(key, n);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return n;
}
