/**
 * Identifiers and timestamps shaped like the Mattermost server's.
 *
 * @module
 */

const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const ID_PATTERN = /^[a-z0-9]{26}$/;

/**
 * A new random id: 26 characters of `[a-z0-9]`, like `model.NewId()`.
 *
 * @example
 * ```ts
 * const id = newId(); // "k3x9…" (26 chars)
 * ```
 */
export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(26));
  let id = "";
  for (const byte of bytes) id += ID_ALPHABET[byte % ID_ALPHABET.length];
  return id;
}

/**
 * Whether `value` is a well-formed Mattermost id (`model.IsValidId`).
 *
 * @example
 * ```ts
 * isValidId(newId()); // true
 * isValidId("me"); // false
 * ```
 */
export function isValidId(value: unknown): value is string {
  return typeof value === "string" && ID_PATTERN.test(value);
}

/**
 * A millisecond clock that never returns the same value twice, so `create_at` is strictly increasing
 * (posts created in one millisecond would otherwise tie and `since` queries would be ambiguous).
 *
 * @example
 * ```ts
 * const clock = new Clock();
 * clock.now() < clock.now(); // true
 * ```
 */
export class Clock {
  #last = 0;

  /** `offsetMs` shifts the clock from the machine's, like a server whose clock differs from its clients'. */
  constructor(readonly offsetMs = 0) {}

  /** The current time in ms, strictly greater than any value returned before. */
  now(): number {
    this.#last = Math.max(Date.now() + this.offsetMs, this.#last + 1);
    return this.#last;
  }
}
