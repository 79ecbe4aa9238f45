import { openGGUF } from "../../gguf/node";
import { formatValue } from "../../gguf/metadata";
import { typeName } from "../../gguf/quant";
import { ValueType } from "../../gguf/types";
import { parseCommand, required } from "../args";

const spec = {
  name: "inspect",
  summary: "Print a GGUF file's metadata and tensor table.",
  usage: "inspect --model FILE.gguf [--json]",
  details: `
  --model FILE   the GGUF file (only its header is read)
  --json         machine-readable output: {"version","alignment","metadata":{…},"types":{…},"tensors":[…]}

The header line is followed by the file's quant mix: how many tensors of each
element type (a 1.6B Q4_K_M file: 170 F32, 145 Q4_K, 25 Q6_K).`,
  options: { model: { type: "string" }, json: { type: "boolean" } },
} as const;

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const file = await openGGUF(required("inspect", opts.model, "model"));
  await file.close();
  const tensors = file.tensors.map((t) => ({ name: t.name, type: typeName(t.type), dims: t.dims, offset: t.offset, bytes: t.byteLength }));
  const types = quantMix(tensors.map((t) => t.type));
  if (opts.json) {
    const metadata = Object.fromEntries(
      [...file.metadata].map(([k, v]) => [k, v.type === ValueType.ARRAY && v.value.length > 64 ? formatValue(v) : toJson(v.value)]),
    );
    process.stdout.write(`${JSON.stringify({ version: file.version, alignment: file.alignment, metadata, types, tensors })}\n`);
    return 0;
  }
  const mix = Object.entries(types).map(([type, n]) => `${n} ${type}`).join(", ");
  const lines = [`GGUF v${file.version}, ${file.size} bytes, alignment ${file.alignment}, ${file.metadata.size} metadata keys, ${file.tensors.length} tensors`, `tensor types: ${mix}`, ""];
  for (const [k, v] of file.metadata) lines.push(`${k} = ${formatValue(v)}`);
  lines.push("", `${"tensor".padEnd(32)} ${"type".padEnd(6)} ${"dims".padEnd(16)} bytes`);
  for (const t of tensors) lines.push(`${t.name.padEnd(32)} ${t.type.padEnd(6)} ${`[${t.dims.join(", ")}]`.padEnd(16)} ${t.bytes}`);
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

/** Tensors per element type, most common first (ties by name). */
function quantMix(types: string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const t of types) counts.set(t, (counts.get(t) ?? 0) + 1);
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

function toJson(v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.map((x) => (typeof x === "object" && x !== null && "value" in x ? toJson((x as { value: unknown }).value) : toJson(x)));
  return v;
}
