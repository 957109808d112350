/**
 * Request rate limiting like the server's `RateLimiter` (app/ratelimit.go: throttled's GCRA with `PerSec`
 * and `MaxBurst`, keyed by remote address unless configured otherwise): every response carries
 * `X-RateLimit-*` headers; an exhausted key gets 429 with a `text/plain` body and `Retry-After`.
 *
 * @module
 */

import type { RateLimitConfig } from "./app.ts";

/**
 * `RateLimiter.GenerateKey`: with `VaryByUser` the request's token (the address when it has none), else with
 * `VaryByRemoteAddr` (the default) the remote address, else one bucket for everyone.
 */
export function rateLimitKey(config: RateLimitConfig, token: string | undefined, remoteAddr: string): string {
  const byAddr = config.varyByRemoteAddr ?? true;
  if (config.varyByUser) return token ?? (byAddr ? remoteAddr : "");
  return byAddr ? remoteAddr : "";
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** The outcome for one request. */
export interface RateLimitResult {
  limited: boolean;
  headers: Record<string, string>;
}

/**
 * A token bucket per key holding `burst + 1` requests, refilled at `perSecond`.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter();
 * const { limited, headers } = limiter.take({ perSecond: 10, burst: 100 }, token);
 * ```
 */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  /** Forget all buckets (after the limit settings change). */
  reset(): void {
    this.#buckets.clear();
  }

  /** Spend one request for `key` under `config`. */
  take(config: RateLimitConfig, key: string, now = Date.now()): RateLimitResult {
    const capacity = config.burst + 1;
    const bucket = this.#buckets.get(key) ?? { tokens: capacity, updatedAt: now };
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.updatedAt) / 1000) * config.perSecond);
    bucket.updatedAt = now;
    this.#buckets.set(key, bucket);
    const limited = bucket.tokens < 1;
    if (!limited) bucket.tokens -= 1;
    const headers: Record<string, string> = {
      "X-RateLimit-Limit": String(capacity),
      "X-RateLimit-Remaining": String(Math.floor(bucket.tokens)),
      "X-RateLimit-Reset": String(Math.ceil((capacity - bucket.tokens) / config.perSecond)),
    };
    if (limited) headers["Retry-After"] = String(Math.ceil((1 - bucket.tokens) / config.perSecond));
    return { limited, headers };
  }
}
