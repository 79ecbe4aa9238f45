/**
 * Replacing the served model while it serves: the new one loads beside the old, then new
 * requests go to it while the generations already running finish on the old weights; the old
 * engine is closed once the last of them ends. Where memory for both is lacking, the server
 * drains first (new requests get the API's 503 "loading" meanwhile) and loads after.
 */
import { freemem } from "node:os";
import { statSync } from "node:fs";
import type { ServedModel } from "../api/index";

/** What a swap needs from the server: the current model, and how to put the next one in place. */
export interface SwapHost {
  current(): ServedModel | undefined;
  /** Loads the model file again (it may have been replaced). */
  load(): Promise<ServedModel>;
  install(model: ServedModel): void;
  /** New requests wait or get 503 while the server drains (low memory). */
  pause(message: string): void;
  log(line: string): void;
}

/** Generations running on each model: the swap waits for these before closing the old engine. */
export class InFlight {
  private readonly byModel = new Map<ServedModel, Set<Promise<void>>>();

  add(model: ServedModel, finished: Promise<void>): void {
    let set = this.byModel.get(model);
    if (!set) this.byModel.set(model, (set = new Set()));
    set.add(finished);
    void finished.then(() => set!.delete(finished));
  }

  async drained(model: ServedModel): Promise<void> {
    const set = this.byModel.get(model);
    while (set?.size) await Promise.all([...set]);
    this.byModel.delete(model);
  }
}

/** Memory the new model needs beside the old: its file (the weights) and a quarter more (KV, buffers). */
export function swapFits(path: string, free = freemem()): { fits: boolean; needBytes: number; freeBytes: number } {
  const needBytes = Math.ceil(statSync(path).size * 1.25);
  return { fits: needBytes <= free, needBytes, freeBytes: free };
}

export async function swapModel(host: SwapHost, path: string, inflight: InFlight, fits = swapFits(path)): Promise<ServedModel> {
  const old = host.current();
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  if (old && !fits.fits) {
    host.log(`edgelm serve: reload: ${mib(fits.needBytes)} needed beside the current model, ${mib(fits.freeBytes)} free: draining first`);
    host.pause("draining the old model before loading the new one");
    await inflight.drained(old);
    await old.engine.close?.();
  }
  const next = await host.load();
  host.install(next);
  host.log(`edgelm serve: reload: ${next.id} serves new requests`);
  if (old && fits.fits) {
    // In-flight generations keep their ServedModel; the old engine goes once they are done.
    await inflight.drained(old);
    await old.engine.close?.();
    host.log("edgelm serve: reload: the old model's generations ended; its engine is closed");
  }
  return next;
}
