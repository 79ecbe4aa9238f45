/** A response body as whole SSE events (each with its "\n\n"), as the server produced them; a trailing partial event (or a JSON body) comes last. */
export async function* sseEventsOf(res: Response): AsyncGenerator<string> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        yield buf.slice(0, i + 2);
        buf = buf.slice(i + 2);
      }
    }
    if (buf) yield buf;
  } finally {
    await reader.cancel().catch(() => {});
  }
}
