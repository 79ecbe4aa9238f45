/**
 * Test schemas, one or more per supported construct. Strings and arrays are bounded so a random
 * model finishes its value well inside 256 tokens. Also used by the opt-in many-seeds script.
 */
export const SCHEMAS: Record<string, Record<string, unknown>> = {
  flat: {
    type: "object",
    properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer", minimum: 0, maximum: 150 }, active: { type: "boolean" }, note: { type: "null" } },
    required: ["name", "age"],
    additionalProperties: false,
  },
  nested10: {
    type: "object",
    properties: {
      id: { type: "integer", minimum: 1, maximum: 99999 },
      title: { type: "string", maxLength: 16 },
      price: { type: "number", minimum: 0, maximum: 1000 },
      tags: { type: "array", items: { type: "string", maxLength: 8 }, maxItems: 3 },
      owner: {
        type: "object",
        properties: { first: { type: "string", maxLength: 10 }, last: { type: "string", maxLength: 10 }, email: { type: "string", pattern: "^[a-z]{1,8}@[a-z]{1,8}\\.com$" } },
        required: ["first", "last"],
      },
      stock: { type: "integer", minimum: -5, maximum: 5 },
      color: { enum: ["red", "green", "blue"] },
      ratio: { type: "number", minimum: -1, maximum: 1 },
      fragile: { type: "boolean" },
      sku: { type: "string", pattern: "^[A-Z]{3}-\\d{4}$" },
    },
    required: ["id", "title", "price", "owner", "color"],
    additionalProperties: false,
  },
  arrays: {
    type: "object",
    properties: {
      points: { type: "array", items: { type: "object", properties: { x: { type: "integer", minimum: -9, maximum: 9 }, y: { type: "integer", minimum: -9, maximum: 9 } }, required: ["x", "y"] }, minItems: 1, maxItems: 3 },
      words: { type: "array", items: { type: "string", minLength: 1, maxLength: 5 }, minItems: 2, maxItems: 2 },
    },
    required: ["points", "words"],
  },
  enums: {
    type: "object",
    properties: { kind: { const: "order" }, status: { enum: ["open", "closed", 3, null, true] }, level: { enum: [1, 2, 3] } },
    required: ["kind", "status", "level"],
  },
  anyOf: {
    type: "object",
    properties: {
      value: { anyOf: [{ type: "string", maxLength: 6 }, { type: "integer", minimum: 0, maximum: 9 }, { type: "object", properties: { a: { type: "boolean" } }, required: ["a"] }] },
      maybe: { type: ["string", "null"], maxLength: 4 },
    },
    required: ["value", "maybe"],
  },
  strings: {
    type: "object",
    properties: {
      code: { type: "string", pattern: "^[A-Z][a-z]{1,6}-\\d{2,3}$" },
      short: { type: "string", minLength: 2, maxLength: 4 },
      word: { type: "string", pattern: "(cat|dog)s?", maxLength: 10 },
      text: { type: "string", maxLength: 20 },
    },
    required: ["code", "short", "word", "text"],
  },
  numbers: {
    type: "object",
    properties: {
      small: { type: "number", minimum: -2.5, maximum: 2.5 },
      big: { type: "integer", minimum: 1000, maximum: 2000 },
      neg: { type: "integer", minimum: -300, maximum: -100 },
      any: { type: "number" },
    },
    required: ["small", "big", "neg", "any"],
  },
  recursive: {
    $defs: {
      node: {
        type: "object",
        properties: { label: { type: "string", maxLength: 4 }, children: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } },
        required: ["label"],
        additionalProperties: false,
      },
    },
    $ref: "#/$defs/node",
  },
  optional: {
    title: "Optional fields",
    description: "annotations are ignored",
    type: "object",
    properties: { a: { type: "integer", minimum: 0, maximum: 9 }, b: { type: "string", maxLength: 3 }, c: { type: "boolean" }, d: { type: "integer", minimum: 0, maximum: 9 } },
    required: ["d"],
    additionalProperties: false,
  },
  topArray: { type: "array", items: { type: "number", minimum: 0, maximum: 10 }, minItems: 1, maxItems: 4 },
};
