/**
 * The API's FIFO generation queue, adapted to workerd's request contexts. A queued request waits
 * on a promise that another request resolves when it releases the engine; workerd sees a request
 * with nothing pending in its own context as hung and cancels it ("your Worker's code had hung").
 * So a waiter also ticks a timer of its own until its turn comes (cheap: one wake-up per tick).
 *
 * It also counts requests in and out of the wait, so a model swap can tell when every request
 * that queued before it (and so chose the old model) has started or given up (model-swap.ts).
 */
import { GenerationQueue, type Release } from "../api/queue";

const TICK_MS = 25;

export class WorkerQueue extends GenerationQueue {
  /** Requests that asked for the engine, and those that have since got it or were refused. */
  entered = 0;
  passed = 0;

  override async acquire(signal?: AbortSignal, positions?: number): Promise<Release> {
    this.entered++;
    try {
      return await this.wait(signal, positions);
    } finally {
      // Counted here, not when the turn settles: the caller registers its generation right after this returns.
      this.passed++;
    }
  }

  private async wait(signal?: AbortSignal, positions?: number): Promise<Release> {
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
