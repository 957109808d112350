/**
 * Waiting in tests without servers: for a condition on in-process fakes, polled every couple of milliseconds (the
 * harness' `waitFor` polls servers more gently).
 *
 * @module
 */

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `cond` holds, polling every 2 ms; throws "timed out waiting for `what`" after `timeoutMs`. */
export async function waitUntil(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}
