/** Response ids and timestamps, OpenAI style (`cmpl-…`, `chatcmpl-…`, unix seconds). */
export function responseId(prefix: "cmpl" | "chatcmpl"): string {
  return `${prefix}-${crypto.randomUUID().replace(/-/g, "")}`;
}

export function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** 24 hex characters, for tool call ids (`call_…`). */
export function randomId(): string {
  return crypto.randomUUID().replace(/-/g, "").slice(0, 24);
}
