/** JSON Schema subset → grammar (stub: replaced by the compiler). */
export class SchemaError extends Error {
  override name = "SchemaError";
  constructor(
    readonly path: string,
    message: string,
    readonly code = "invalid_schema",
  ) {
    super(message);
  }
}

export function compileSchema(schema: object): object {
  return schema;
}
