/**
 * The API's FIFO generation queue, adapted to workerd's request contexts. A queued request waits
 * on a promise that another request resolves when it releases the engine; workerd sees a request
 * with nothing pending in its own context as hung and cancels it ("your Worker's code had hung").
 * So a waiter also ticks a timer of its own until its turn comes (cheap: one wake-up per tick).
 */
import { GenerationQueue, type Release } from "../api/queue";

const TICK_MS = 25;

export class WorkerQueue extends GenerationQueue {
  override async acquire(signal?: AbortSignal, positions?: number): Promise<Release> {
    const turn = super.acquire(signal, positions);
    let settled = false;
    turn.then(
      () => (settled = true),
      () => (settled = true),
    );
    // Let an immediate grant or refusal (429) settle before deciding to wait.
    await Promise.resolve();
    while (!settled) await new Promise((r) => setTimeout(r, TICK_MS));
    return turn;
  }
}
