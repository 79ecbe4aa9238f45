/**
 * The RateLimiter Durable Object: one instance per API key, named by the key's SHA-256 (never the
 * key), holding that key's ledger (rate-limit-ledger.ts). Every isolate of the Worker reaches the
 * same instance, which is what makes a limit hold across isolates. The ledger is stored on every
 * change, so a restart of the object (a deploy, an eviction) does not hand out a fresh bucket.
 */
import { lease, type Ledger, type LeaseCall } from "./rate-limit-ledger";

/** The part of a Durable Object's state this class uses, declared structurally (see env.ts). */
interface DurableObjectStateLike {
  storage: { get(key: string): Promise<unknown>; put(key: string, value: unknown): Promise<void> };
}

const LEDGER = "ledger";

export class RateLimiter {
  private ledger?: Ledger;
  private loaded?: Promise<void>;

  constructor(
    private readonly state: DurableObjectStateLike,
    _env: unknown,
  ) {}

  async fetch(req: Request): Promise<Response> {
    let call: LeaseCall;
    try {
      call = parseCall(await req.json());
    } catch (err) {
      return Response.json({ error: (err as Error).message }, { status: 400 });
    }
    this.loaded ??= this.state.storage.get(LEDGER).then((l) => {
      this.ledger = l as Ledger | undefined;
    });
    await this.loaded;
    const { ledger, answer } = lease(this.ledger, call, Date.now());
    this.ledger = ledger;
    await this.state.storage.put(LEDGER, ledger);
    return Response.json(answer);
  }
}

/** The isolates are the only callers, but a bad number here would poison the stored ledger. */
function parseCall(v: unknown): LeaseCall {
  const o = v as Partial<LeaseCall> | null;
  const count = (n: unknown, what: string) => {
    if (typeof n !== "number" || !Number.isFinite(n) || n < 0) throw new Error(`${what} must be a number ≥ 0`);
    return n;
  };
  const limit = (n: unknown, what: string) => (n === undefined || n === null ? undefined : count(n, what));
  if (!o || typeof o !== "object" || !o.limits || !o.returned) throw new Error("expected {limits, returned, need?}");
  return {
    limits: { rpm: limit(o.limits.rpm, "limits.rpm"), tpm: limit(o.limits.tpm, "limits.tpm"), slice: count(o.limits.slice, "limits.slice") },
    returned: { requests: count(o.returned.requests, "returned.requests"), tokens: count(o.returned.tokens, "returned.tokens") },
    need: o.need === undefined ? undefined : count(o.need, "need"),
  };
}
