/**
 * Bounding how long to wait for something, without leaving a timer behind.
 *
 * @module
 */

/**
 * Resolves or rejects as `promise` does, unless `ms` pass first: then rejects with `onTimeout()`. The timer is
 * cleared either way.
 *
 * @example
 * ```ts
 * await deadline(client.start(), 15_000, () => new Error("no answer from the server within 15 s"));
 * ```
 */
export function deadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => timer = setTimeout(() => reject(onTimeout()), ms));
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Waits for `promise` to settle, at most `ms`, and never rejects: for best-effort steps such as shutdown.
 *
 * @example
 * ```ts
 * await settleWithin(client.stop(), 2_000);
 * ```
 */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  await deadline(promise, ms, () => new Error("timed out")).catch(() => {});
}

/**
 * Resolves after `ms`, or at once when `signal` aborts (the caller checks `signal.aborted`): a backoff wait that
 * never outlives a stop.
 *
 * @example
 * ```ts
 * await sleep(delay, controller.signal);
 * if (controller.signal.aborted) return;
 * ```
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
