import { describe, expect, it } from "vitest";
import { progressBar } from "../../weights-tools/progress";

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  const stream = { isTTY, columns: 120, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
  return { stream, writes };
}

describe("progress bar", () => {
  it("on a terminal, redraws one line with the figures in the caller's format, then clears it for the summary", () => {
    const { stream, writes } = fakeStream(true);
    const chunks = progressBar("perplexity m.gguf", stream, (n) => `${n}`);
    chunks.update(3, 3, "chunks, PPL 12.3456");
    expect(writes[0]).toMatch(/^\rperplexity m\.gguf \[#{30}\] 100% 3\/3 chunks, PPL 12\.3456 *$/);
    chunks.finish("done");
    expect(writes.slice(1)).toEqual(["\r\x1b[K", "done\n"]);

    const bytes = fakeStream(true);
    progressBar("convert", bytes.stream).update(1024, 2048);
    expect(bytes.writes[0]).toContain(" 50% 1.0 KiB/2.0 KiB");
  });

  it("elsewhere, writes only the summary", () => {
    const { stream, writes } = fakeStream(false);
    const bar = progressBar("x", stream, (n) => `${n}`);
    bar.update(1, 2);
    bar.finish("summary");
    expect(writes).toEqual(["summary\n"]);
  });
});
