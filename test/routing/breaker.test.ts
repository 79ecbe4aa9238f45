/** The circuit breaker on an injected clock: no waiting, every transition caused by the test. */
import { describe, expect, it } from "vitest";
import { CircuitBreaker, type BreakerState } from "../../src/routing/breaker";

function setup() {
  let t = 1000;
  const changes: BreakerState[] = [];
  const b = new CircuitBreaker({ failures: 3, cooldownMs: 5000 }, () => t, (s) => changes.push(s));
  return { b, changes, advance: (ms: number) => (t += ms) };
}

describe("CircuitBreaker", () => {
  it("stays closed below the threshold; a success resets the count", () => {
    const { b } = setup();
    b.failure("x");
    b.failure("x");
    b.success();
    b.failure("x");
    b.failure("x");
    expect(b.state).toBe("closed");
    expect(b.tryAcquire()).toBe(true);
  });

  it("opens after N consecutive failures and lets nothing through during the cool-down", () => {
    const { b, changes, advance } = setup();
    for (let i = 0; i < 3; i++) b.failure("http_500");
    expect(b.state).toBe("open");
    expect(changes).toEqual(["open"]);
    advance(4999);
    expect(b.canPass()).toBe(false);
    expect(b.tryAcquire()).toBe(false);
  });

  it("after the cool-down, exactly one probe; its success closes the breaker", () => {
    const { b, changes, advance } = setup();
    for (let i = 0; i < 3; i++) b.failure("x");
    advance(5000);
    expect(b.state).toBe("half-open");
    expect(b.canPass()).toBe(true);
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false); // a second request while the probe is out
    b.success();
    expect(b.state).toBe("closed");
    expect(b.failures).toBe(0);
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  it("a failed probe opens it for another full cool-down", () => {
    const { b, changes, advance } = setup();
    for (let i = 0; i < 3; i++) b.failure("x");
    advance(6000);
    expect(b.tryAcquire()).toBe(true);
    b.failure("probe");
    expect(b.state).toBe("open");
    advance(4999);
    expect(b.tryAcquire()).toBe(false);
    advance(1);
    expect(b.tryAcquire()).toBe(true);
    expect(changes).toEqual(["open", "half-open", "open", "half-open"]);
  });

  it("a probe that ended without an answer (client left) does not wedge it half-open", () => {
    const { b, advance } = setup();
    for (let i = 0; i < 3; i++) b.failure("x");
    advance(5000);
    expect(b.tryAcquire()).toBe(true);
    b.release();
    expect(b.tryAcquire()).toBe(true);
  });
});
