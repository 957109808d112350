import assert from "node:assert/strict";
import { Backoff } from "../../src/core/backoff.ts";
import { sleep } from "../../src/core/deadline.ts";

/** `count` waits of `backoff`, in order. */
function waits(backoff: Backoff, count: number): number[] {
  return Array.from({ length: count }, () => backoff.next());
}

Deno.test("the waits double from initialMs and stay at maxMs", () => {
  const backoff = new Backoff({ initialMs: 1_000, maxMs: 30_000 });
  assert.deepEqual(waits(backoff, 8), [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  assert.equal(backoff.failures, 8);
});

Deno.test("a factor other than 2 grows the waits by that factor", () => {
  const backoff = new Backoff({ initialMs: 100, maxMs: 1_000, factor: 3 });
  assert.deepEqual(waits(backoff, 4), [100, 300, 900, 1_000]);
});

Deno.test("a factor of 1 keeps the wait constant", () => {
  assert.deepEqual(waits(new Backoff({ initialMs: 2_000, maxMs: 2_000, factor: 1 }), 3), [
    2_000,
    2_000,
    2_000,
  ]);
});

Deno.test("reset starts over from initialMs", () => {
  const backoff = new Backoff({ initialMs: 5, maxMs: 100 });
  waits(backoff, 5);
  backoff.reset();
  assert.equal(backoff.failures, 0);
  assert.deepEqual(waits(backoff, 2), [5, 10]);
});

Deno.test("a thousand failures still give maxMs, not Infinity or NaN", () => {
  const backoff = new Backoff({ initialMs: 1, maxMs: 60_000 });
  assert.equal(waits(backoff, 1_000).at(-1), 60_000);
});

Deno.test("jitter adds between 0 and jitterMs to every wait, and the cap holds with it", () => {
  const policy = { initialMs: 3_000, maxMs: 28_000, jitterMs: 2_000 };
  assert.deepEqual(waits(new Backoff(policy, () => 0), 6), [3_000, 6_000, 12_000, 24_000, 28_000, 28_000]);
  const top = waits(new Backoff(policy, () => 0.999_999), 6);
  assert.deepEqual(top, [5_000, 8_000, 14_000, 26_000, 30_000, 30_000]);
  const plain = [3_000, 6_000, 12_000, 24_000, 28_000, 28_000];
  for (let run = 0; run < 200; run++) {
    waits(new Backoff(policy), 6).forEach((w, i) => {
      assert.ok(w >= plain[i] && w <= plain[i] + 2_000, `wait ${i} was ${w}`);
      assert.ok(w <= 30_000);
    });
  }
});

Deno.test("jitter spreads the waits of clients that failed together", () => {
  const firsts = new Set(
    Array.from({ length: 50 }, () => new Backoff({ initialMs: 0, maxMs: 0, jitterMs: 1_000 }).next()),
  );
  assert.ok(firsts.size > 10, `only ${firsts.size} distinct waits`);
});

Deno.test("a server-given wait longer than the backoff is honoured, and the growth goes on underneath", () => {
  const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  assert.equal(backoff.next(), 500);
  assert.equal(backoff.next(7_000), 7_000);
  assert.equal(backoff.next(), 2_000);
  assert.equal(backoff.next(100), 4_000, "a shorter server-given wait does not shorten the backoff");
});

Deno.test("a server-given wait is capped at maxMs, and a malformed one is ignored", () => {
  const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  assert.equal(backoff.next(3_600_000), 30_000);
  assert.equal(backoff.next(Number.NaN), 1_000);
  assert.equal(backoff.next(Infinity), 2_000);
  assert.equal(backoff.next(-5), 4_000);
});

Deno.test("a policy that makes no sense is refused, naming what is wrong", () => {
  assert.throws(() => new Backoff({ initialMs: 10, maxMs: 5 }), /maxMs \(5\) is below initialMs \(10\)/);
  assert.throws(() => new Backoff({ initialMs: -1, maxMs: 5 }), /finite and ≥ 0/);
  assert.throws(() => new Backoff({ initialMs: 1, maxMs: Infinity }), /finite and ≥ 0/);
  assert.throws(() => new Backoff({ initialMs: 1, maxMs: 5, factor: 0.5 }), /factor finite and ≥ 1/);
  assert.throws(() => new Backoff({ initialMs: 1, maxMs: 5, jitterMs: Number.NaN }), /finite and ≥ 0/);
});

Deno.test("an abort ends the wait at once and the loop with it, leaving no timer behind", async () => {
  const stop = new AbortController();
  const backoff = new Backoff({ initialMs: 3_600_000, maxMs: 3_600_000 });
  let attempts = 0;
  const loop = (async () => {
    while (!stop.signal.aborted) {
      attempts++;
      await sleep(backoff.next(), stop.signal);
    }
  })();
  // The loop is parked in an hour-long wait; the test's op sanitizer fails it if that timer outlives the test.
  await Promise.resolve();
  stop.abort();
  let guard: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    loop.then(() => "ended"),
    new Promise((resolve) => guard = setTimeout(resolve, 5_000, "still waiting 5 s after the abort")),
  ]);
  clearTimeout(guard);
  assert.equal(outcome, "ended");
  assert.equal(attempts, 1);
});

Deno.test("a wait asked for after the abort does not start at all", async () => {
  const stop = new AbortController();
  stop.abort();
  await sleep(new Backoff({ initialMs: 3_600_000, maxMs: 3_600_000 }).next(), stop.signal);
});
