/**
 * Errors the bridge explains to a person.
 *
 * @module
 */

/**
 * Why a failure cannot be retried, when a connector knows: the server refused the account (`credentials`) or the
 * settings point at something that cannot work (`configuration`). The entry point turns it into an exit code.
 */
export type FailureKind = "credentials" | "configuration";

/**
 * An error whose message is written for the person who has to act on it.
 *
 * `transient` marks failures worth retrying (network down, rate-limited, server error);
 * everything else is permanent for the input that caused it.
 *
 * @example
 * ```ts
 * throw new BridgeError("room@conference.example.org does not exist", { transient: false });
 * ```
 */
export class BridgeError extends Error {
  /** True when the same operation may succeed later. */
  readonly transient: boolean;
  /** Milliseconds the peer asked us to wait before retrying, when it said. */
  readonly retryAfterMs?: number;
  /** What is wrong, for a permanent failure whose cause a connector could tell. */
  readonly kind?: FailureKind;

  constructor(
    message: string,
    opts: { transient?: boolean; retryAfterMs?: number; kind?: FailureKind; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = "BridgeError";
    this.transient = opts.transient ?? false;
    this.retryAfterMs = opts.retryAfterMs;
    this.kind = opts.kind;
  }
}

/** True when `err` is worth retrying: a transient BridgeError or anything that is not a BridgeError. */
export function isTransient(err: unknown): boolean {
  return err instanceof BridgeError ? err.transient : true;
}

/** The message of any thrown value, for logs and replies. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
