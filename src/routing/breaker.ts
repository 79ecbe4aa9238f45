/**
 * A circuit breaker for the origin, in isolate memory (each isolate learns on its own; no shared
 * state to pay for per request). Closed: requests go through, consecutive failures are counted.
 * After `failures` in a row it opens: the policy skips the origin, so a dead origin costs nothing
 * but this check. After `cooldownMs` one request is let through as a probe (half-open): its
 * success closes the breaker, its failure opens it for another cool-down. The clock is injected,
 * so tests drive time instead of waiting for it.
 */
import type { BreakerConfig } from "./config";

export type BreakerState = "closed" | "open" | "half-open";

export class CircuitBreaker {
  private consecutive = 0;
  private openedAt = 0;
  private opened = false;
  private probing = false;

  constructor(
    private readonly cfg: BreakerConfig,
    private readonly now: () => number = () => Date.now(),
    private readonly onChange: (state: BreakerState, why: string) => void = () => {},
  ) {}

  get state(): BreakerState {
    if (!this.opened) return "closed";
    return this.probing || this.now() - this.openedAt >= this.cfg.cooldownMs ? "half-open" : "open";
  }

  get failures(): number {
    return this.consecutive;
  }

  /** Whether a request would be let through now (no side effects: the policy's view). */
  canPass(): boolean {
    if (!this.opened) return true;
    return !this.probing && this.now() - this.openedAt >= this.cfg.cooldownMs;
  }

  /** Takes the right to send one request: always when closed, once per cool-down when open. */
  tryAcquire(): boolean {
    if (!this.opened) return true;
    if (!this.canPass()) return false;
    this.probing = true;
    this.onChange("half-open", `probing the origin after ${this.cfg.cooldownMs} ms open`);
    return true;
  }

  success(): void {
    const was = this.opened;
    this.consecutive = 0;
    this.opened = false;
    this.probing = false;
    if (was) this.onChange("closed", "the probe succeeded");
  }

  failure(why: string): void {
    this.consecutive++;
    if (this.probing) {
      this.probing = false;
      this.openedAt = this.now();
      this.onChange("open", `the probe failed (${why})`);
    } else if (!this.opened && this.consecutive >= this.cfg.failures) {
      this.opened = true;
      this.openedAt = this.now();
      this.onChange("open", `${this.consecutive} consecutive failures (last: ${why})`);
    }
  }

  /** The request ended without saying anything about the origin's health (e.g. the client left early). */
  release(): void {
    // A probe that told us nothing must not keep the breaker half-open forever.
    if (this.probing) this.probing = false;
  }
}
