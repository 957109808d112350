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
  /**
   * What is wrong, when a connector could tell that the account or the settings are at fault. A transient failure
   * may carry it too (an untrusted certificate): retried while running, it still ends a start.
   */
  readonly kind?: FailureKind;
  /**
   * For a permanent failure to deliver a message: why, in one sentence for the message's author, naming the network
   * and without ids, addresses or server internals (e.g. "the XMPP room has banned the bridge").
   */
  readonly notice?: string;

  constructor(
    message: string,
    opts: {
      transient?: boolean;
      retryAfterMs?: number;
      kind?: FailureKind;
      notice?: string;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = "BridgeError";
    this.transient = opts.transient ?? false;
    this.retryAfterMs = opts.retryAfterMs;
    this.kind = opts.kind;
    this.notice = opts.notice;
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

/** The fields of an error (a JS Error, a node socket error, an XMPP condition) that explain it. */
export interface ErrorLike {
  name?: string;
  message?: string;
  code?: string;
  condition?: string;
  text?: string;
  cause?: unknown;
}

/**
 * The innermost error of `err`'s `cause` chain that says something, i.e. the root cause behind wrappers.
 *
 * @example
 * ```ts
 * rootError(new Error("fetch failed", { cause: new Error("Connection refused") })).message; // "Connection refused"
 * ```
 */
export function rootError(err: unknown): ErrorLike {
  let current = err as ErrorLike;
  for (let depth = 0; depth < 10; depth++) {
    const next = current?.cause as ErrorLike | undefined;
    if (!next || typeof next !== "object" || !(next.message || next.code || next.condition)) break;
    current = next;
  }
  return current ?? {};
}
