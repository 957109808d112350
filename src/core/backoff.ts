/**
 * One backoff for every retry loop of the bridge: waits that grow by a factor up to a cap, with random jitter, at
 * least as long as a wait the server asked for. The wait itself is `sleep(ms, signal)` from `deadline.ts`, which a
 * stop ends at once.
 *
 * A loop owns one {@link Backoff}, asks it for the next wait after each failure, and resets it after a success:
 *
 * ```ts
 * const backoff = new Backoff({ initialMs: 1_000, maxMs: 30_000, jitterMs: 500 });
 * while (!signal.aborted) {
 *   try {
 *     await connect();
 *     backoff.reset();
 *     break;
 *   } catch (err) {
 *     const waitMs = backoff.next((err as BridgeError).retryAfterMs);
 *     log.warn("Failed; retrying in {waitMs} ms", { waitMs });
 *     await sleep(waitMs, signal); // resolves at once on abort
 *   }
 * }
 * ```
 *
 * Loops run by a library (`@xmpp/reconnect`, the Mattermost websocket client) are driven the same way: the delay the
 * library waits next is set from {@link Backoff.next}.
 *
 * @module
 */

/** How the waits of a retry loop grow. */
export interface BackoffPolicy {
  /** The first wait, in ms. */
  initialMs: number;
  /** The longest wait before jitter, in ms; a server-given wait is capped here too, so no header can park a loop. */
  maxMs: number;
  /** How much each wait grows over the one before (default 2). */
  factor?: number;
  /**
   * A random extra of up to this many ms added to every wait (default 0), so that many clients cut off together do
   * not all come back at the same instant. The longest wait is therefore `maxMs + jitterMs`.
   */
  jitterMs?: number;
}

/**
 * The waits of one retry loop: `initialMs`, then `factor` times the one before, never above `maxMs`, each plus a
 * random jitter in `[0, jitterMs)`.
 *
 * @example
 * ```ts
 * const backoff = new Backoff({ initialMs: 500, maxMs: 2_000 });
 * backoff.next(); // 500
 * backoff.next(); // 1000
 * backoff.next(5_000); // 2000: the server asked for 5 s, capped at maxMs
 * backoff.next(); // 2000
 * backoff.reset();
 * backoff.next(); // 500
 * ```
 */
export class Backoff {
  readonly #policy: Required<BackoffPolicy>;
  readonly #random: () => number;
  /** The wait before jitter that the next failure gets. */
  #base: number;
  #failures = 0;

  /**
   * @param random a source of numbers in `[0, 1)` for the jitter (tests pass a fixed one).
   * @throws RangeError when the policy makes no sense (negative or non-finite times, a factor below 1, a cap below
   * the first wait).
   */
  constructor(policy: BackoffPolicy, random: () => number = Math.random) {
    const { initialMs, maxMs, factor = 2, jitterMs = 0 } = policy;
    const fine = (n: number) => Number.isFinite(n) && n >= 0;
    if (!fine(initialMs) || !fine(maxMs) || !fine(jitterMs) || !(factor >= 1 && Number.isFinite(factor))) {
      const policyText = JSON.stringify(policy);
      throw new RangeError(
        `backoff policy ${policyText}: times must be finite and ≥ 0, and the factor finite and ≥ 1`,
      );
    }
    if (maxMs < initialMs) {
      throw new RangeError(`backoff policy: maxMs (${maxMs}) is below initialMs (${initialMs})`);
    }
    this.#policy = { initialMs, maxMs, factor, jitterMs };
    this.#random = random;
    this.#base = initialMs;
  }

  /** Failures counted since the last {@link reset}: how many times {@link next} was asked. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Counts a failure and returns how long to wait before the next attempt, in ms. `retryAfterMs`, a wait the peer
   * asked for (HTTP `Retry-After`), is honoured up to `maxMs`; the growth goes on underneath it.
   */
  next(retryAfterMs?: number): number {
    const { maxMs, factor, jitterMs } = this.#policy;
    const base = this.#base;
    this.#base = Math.min(maxMs, base * factor);
    this.#failures++;
    const asked = typeof retryAfterMs === "number" && Number.isFinite(retryAfterMs) ? retryAfterMs : 0;
    const wait = Math.max(base, Math.min(maxMs, asked));
    return Math.round(wait + this.#random() * jitterMs);
  }

  /** Starts over from `initialMs`: call it once an attempt succeeded. */
  reset(): void {
    this.#base = this.#policy.initialMs;
    this.#failures = 0;
  }
}
