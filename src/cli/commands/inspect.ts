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
  --json         machine-readable output: {"version","alignment","metadata":{…},"tensors":[…]}`,
  options: { model: { type: "string" }, json: { type: "boolean" } },
} as const;

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const file = await openGGUF(required("inspect", opts.model, "model"));
  await file.close();
  const tensors = file.tensors.map((t) => ({ name: t.name, type: typeName(t.type), dims: t.dims, offset: t.offset, bytes: t.byteLength }));
  if (opts.json) {
    const metadata = Object.fromEntries(
      [...file.metadata].map(([k, v]) => [k, v.type === ValueType.ARRAY && v.value.length > 64 ? formatValue(v) : toJson(v.value)]),
    );
    process.stdout.write(`${JSON.stringify({ version: file.version, alignment: file.alignment, metadata, tensors })}\n`);
    return 0;
  }
  const lines = [`GGUF v${file.version}, ${file.size} bytes, alignment ${file.alignment}, ${file.metadata.size} metadata keys, ${file.tensors.length} tensors`, ""];
  for (const [k, v] of file.metadata) lines.push(`${k} = ${formatValue(v)}`);
  lines.push("", `${"tensor".padEnd(32)} ${"type".padEnd(6)} ${"dims".padEnd(16)} bytes`);
  for (const t of tensors) lines.push(`${t.name.padEnd(32)} ${t.type.padEnd(6)} ${`[${t.dims.join(", ")}]`.padEnd(16)} ${t.bytes}`);
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

function toJson(v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.map((x) => (typeof x === "object" && x !== null && "value" in x ? toJson((x as { value: unknown }).value) : toJson(x)));
  return v;
}
