/**
 * The server's resident memory, read from outside the server: the soak measures the process that
 * serves (workerd, or the `edgelm serve` child), never its own heap, so the client's buffers and
 * parsing cannot pass for a leak or hide one.
 */
import { readdirSync, readFileSync } from "node:fs";

/** VmRSS of `pid` in bytes; throws (never 0 or NaN) when it cannot be read, so a check cannot pass on no data. */
export function rssBytes(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch (e) {
    throw new Error(`cannot read the RSS of process ${pid}: /proc/${pid}/status is unreadable (${(e as Error).message}); the soak's memory checks need Linux's /proc`);
  }
  const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  if (!m) throw new Error(`cannot read the RSS of process ${pid}: no VmRSS line in /proc/${pid}/status (a zombie, or not Linux)`);
  return Number(m[1]) * 1024;
}

/** Processes whose parent is `parent` and whose command name is `name` (/proc/<pid>/stat: "pid (comm) state ppid …"). */
export function childrenNamed(parent: number, name: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch (e) {
    throw new Error(`cannot list processes: /proc is unreadable (${(e as Error).message}); the soak needs Linux's /proc to find workerd`);
  }
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // it exited while we looked
    }
    // comm may itself contain spaces and parentheses: it runs to the last ")".
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    if (comm === name && ppid === parent) found.push(Number(entry));
  }
  return found;
}

/** The one `workerd` this process started; throws with what was found otherwise. */
export function ownWorkerdPid(): number {
  const pids = childrenNamed(process.pid, "workerd");
  if (pids.length !== 1) throw new Error(`expected one workerd child of process ${process.pid}, found ${pids.length ? pids.join(", ") : "none"}: cannot read workerd's RSS`);
  return pids[0];
}
