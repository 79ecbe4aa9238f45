/**
 * One isolate's leases, per limiter (per API key hash): a request the lease covers is admitted
 * here without a round trip; otherwise the limiter is called, with what is left of the lease
 * handed back. Refunds of unused tokens go into a live lease (this isolate spends them next) or,
 * when there is none, back to the limiter at once so other isolates see them.
 */
import type { DimensionStatus, LeaseAnswer, LeaseCall, LeaseLimits, LimitStatus } from "./rate-limit-ledger";
import { WINDOW_MS } from "./token-bucket";

export type LimiterCall = (id: string, call: LeaseCall) => Promise<LeaseAnswer>;

interface Held {
  /** Spendable until expiresAt; Infinity for a dimension that is not limited. */
  requests: number;
  tokens: number;
  expiresAt: number;
  /** The limiter's last word, for the headers of locally admitted requests. */
  status: LimitStatus;
  /** Refunds that arrived while no lease was live and have not reached the limiter yet. */
  owedTokens: number;
}

export type Admitted = { ok: true; status: LimitStatus } | { ok: false; answer: Extract<LeaseAnswer, { ok: false }> };

export class LeaseCache {
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly call: LimiterCall,
    private readonly now: () => number,
  ) {}

  /** Admits a request reserving `need` tokens, or says why not. Throws when the limiter cannot be reached. */
  async admit(id: string, limits: LeaseLimits, need: number): Promise<Admitted> {
    const h = this.held.get(id);
    const now = this.now();
    if (h && now < h.expiresAt && h.requests >= 1 && h.tokens >= need) {
      h.requests -= 1;
      h.tokens -= need;
      return { ok: true, status: this.view(h, limits) };
    }
    const returned = this.takeBack(h);
    let answer: LeaseAnswer;
    try {
      answer = await this.call(id, { limits, returned, need });
    } catch (err) {
      // Not handed back after all: the tokens stay owed and reach the limiter with the next call
      // (request slots cannot wait outside a lease; losing them only admits less).
      this.owe(id, returned.tokens);
      throw err;
    }
    if (!answer.ok) {
      this.remember(id, answer.status);
      return { ok: false, answer };
    }
    const after = this.now();
    const cur = this.entry(id);
    // Leases granted to concurrent calls were all taken out of the buckets: they add up.
    const live = after < cur.expiresAt;
    cur.requests = (live ? cur.requests : 0) + (answer.grant.requests ?? Infinity);
    cur.tokens = (live ? cur.tokens : 0) + (answer.grant.tokens ?? Infinity);
    cur.expiresAt = after + answer.ttlMs;
    cur.status = answer.status;
    return { ok: true, status: this.view(cur, limits) };
  }

  /**
   * The request that reserved `reserved` tokens used `used`: the rest is refunded. Returns the call
   * that carries the refund to the limiter when no lease is live to hold it (for waitUntil).
   */
  settle(id: string, limits: LeaseLimits, reserved: number, used: number): Promise<unknown> | undefined {
    const refund = Math.max(0, reserved - used);
    if (refund === 0 || limits.tpm === undefined) return undefined;
    const h = this.entry(id);
    if (this.now() < h.expiresAt) {
      h.tokens += refund;
      return undefined;
    }
    h.owedTokens += refund;
    const returned = this.takeBack(h);
    return this.call(id, { limits, returned }).then(
      (a) => this.remember(id, a.status),
      () => this.owe(id, returned.tokens),
    );
  }

  /** What is left of a lease (live or not) and what is owed, handed back: the lease is empty after. */
  private takeBack(h: Held | undefined): { requests: number; tokens: number } {
    if (!h) return { requests: 0, tokens: 0 };
    const finite = (n: number) => (Number.isFinite(n) ? Math.max(0, n) : 0);
    const back = { requests: finite(h.requests), tokens: finite(h.tokens) + h.owedTokens };
    h.requests = 0;
    h.tokens = 0;
    h.owedTokens = 0;
    h.expiresAt = 0;
    return back;
  }

  private owe(id: string, tokens: number): void {
    this.entry(id).owedTokens += tokens;
  }

  private remember(id: string, status: LimitStatus): void {
    this.entry(id).status = status;
  }

  private entry(id: string): Held {
    let h = this.held.get(id);
    if (!h) this.held.set(id, (h = { requests: 0, tokens: 0, expiresAt: 0, status: {}, owedTokens: 0 }));
    return h;
  }

  /** The client's view: what the limiter had left, plus what this isolate still holds of its lease. */
  private view(h: Held, limits: LeaseLimits): LimitStatus {
    const dim = (s: DimensionStatus | undefined, held: number, limit: number | undefined): DimensionStatus | undefined => {
      if (limit === undefined) return undefined;
      const remaining = Math.min(limit, (s?.remaining ?? 0) + (Number.isFinite(held) ? held : 0));
      return { limit, remaining, resetMs: Math.ceil(((limit - remaining) / limit) * WINDOW_MS) };
    };
    return { requests: dim(h.status.requests, h.requests, limits.rpm), tokens: dim(h.status.tokens, h.tokens, limits.tpm) };
  }
}
