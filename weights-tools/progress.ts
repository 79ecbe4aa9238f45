/**
 * Progress on stderr: a redrawn bar when stderr is a terminal, and only a one-line summary
 * otherwise, so logs and CI output are not flooded with carriage returns.
 */

export interface Progress {
  update(done: number, total: number, label?: string): void;
  /** A line (a warning) that must not be overwritten by the next redraw. */
  log(line: string): void;
  finish(summary: string): void;
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** `format` writes the done/total figures (bytes by default; a count of chunks for `edgelm perplexity`). */
export function progressBar(prefix: string, stream: NodeJS.WriteStream = process.stderr, format: (n: number) => string = formatBytes): Progress {
  const tty = stream.isTTY === true;
  let last = 0;
  let drawn = false;
  return {
    update(done, total, label = "") {
      if (!tty) return;
      const now = Date.now();
      // Redrawing more often than ~10 times a second only costs time.
      if (now - last < 100 && done < total) return;
      last = now;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const width = 30;
      const fill = Math.round(frac * width);
      const cols = stream.columns ?? 100;
      const line = `${prefix} [${"#".repeat(fill)}${"-".repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${format(done)}/${format(total)} ${label}`;
      stream.write(`\r${line.slice(0, cols - 1).padEnd(cols - 1)}`);
      drawn = true;
    },
    log(line) {
      if (drawn) stream.write("\r\x1b[K");
      stream.write(`${line}\n`);
      last = 0;
    },
    finish(summary) {
      if (drawn) stream.write("\r\x1b[K");
      stream.write(`${summary}\n`);
    },
  };
}
