/**
 * The Mattermost REST client: `@mattermost/client`'s Client4, plus what it cannot do by itself.
 *
 * Client4 reads an error's status from its JSON body, so an error with any other body (the 429 text, a proxy's
 * HTML page) reaches us with no status at all. Requests to the configured server therefore go through a fetch
 * wrapper that waits out `Retry-After` on 429 and turns any other error body without a status into Mattermost's
 * JSON error shape carrying the HTTP status. The wait ends early when the client's stop signal aborts (see
 * {@link createClient}), so no rate limit holds up a stop. Client4 errors are turned into {@link BridgeError}s that say whether a
 * retry can help (by HTTP status), and never carry the token.
 *
 * @module
 */
import mm from "@mattermost/client";
import { getLogger } from "@logtape/logtape";
import { Backoff } from "../core/backoff.ts";
import { sleep } from "../core/deadline.ts";
import { BridgeError } from "../core/errors.ts";
import { describeFailure, explainUnreachable, statusHint } from "./explain.ts";

const log = getLogger(["mmxmpp", "mattermost", "api"]);

/** The Client4 class of `@mattermost/client`. */
export type Client4 = InstanceType<typeof mm.Client4>;

/** Base URLs whose 429 answers the fetch wrapper retries. */
const guardedOrigins = new Set<string>();
let installed = false;

/** Most attempts for one request that keeps getting 429. */
const MAX_RATE_LIMIT_RETRIES = 5;

/** Carries a client's stop signal on the options Client4 hands to `fetch`, for the wrapper's 429 wait only. */
const STOP = Symbol("mmxmpp.stop");
/** The signal of a request made without one: never aborts. */
const NEVER = new AbortController().signal;

/**
 * Wraps the global `fetch` (once per process) so that requests to `baseUrl` that answer 429 are retried after the
 * server's `Retry-After` (capped at 30 s), up to five times, and error answers always tell Client4 their status.
 */
export function retryRateLimitedRequests(baseUrl: string): void {
  guardedOrigins.add(new URL(baseUrl).origin);
  if (installed) return;
  installed = true;
  const inner = globalThis.fetch;
  globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (!guardedOrigins.has(url.origin)) return inner(input, init);
    const stop = (init as { [STOP]?: AbortSignal } | undefined)?.[STOP] ?? NEVER;
    const backoff = new Backoff({ initialMs: 100, maxMs: 30_000 });
    for (let attempt = 1;; attempt++) {
      const res = await inner(input, init);
      if (res.status !== 429 || attempt > MAX_RATE_LIMIT_RETRIES) return withErrorStatus(res, url.pathname);
      const waitMs = backoff.next(retryAfterMs(res.headers));
      log.warn("Mattermost rate-limited {path}; retrying in {waitMs} ms (attempt {attempt})", {
        path: url.pathname,
        waitMs,
        attempt,
      });
      await sleep(waitMs, stop);
      // Stopped while waiting: the caller gets the 429 now instead of another attempt.
      if (stop.aborted) return withErrorStatus(res, url.pathname);
      await res.body?.cancel();
    }
  };
}

/**
 * An error answer Client4 can classify: a Mattermost JSON error passes as it is; any other body (a proxy's HTML
 * page, the rate limiter's text) becomes `{id, message, status_code}` with the HTTP status, because Client4 reads
 * the status only from a JSON body.
 */
async function withErrorStatus(res: Response, path: string): Promise<Response> {
  if (res.ok || res.status < 400) return res;
  const text = await res.text().catch(() => "");
  if (res.headers.get("Content-Type") === "application/json") {
    try {
      const body = JSON.parse(text);
      if (typeof body?.status_code === "number") return rebuilt(res, text);
    } catch {
      // Not JSON after all: described below like any other body.
    }
  }
  const kind = res.headers.get("Content-Type")?.split(";")[0] || "no content type";
  log.warn("Mattermost answered {path} with HTTP {status} and a {kind} body instead of a Mattermost error", {
    path,
    status: res.status,
    kind,
  });
  return rebuilt(
    res,
    JSON.stringify({
      id: "",
      message: `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""} with a ${kind} body`,
      status_code: res.status,
    }),
  );
}

function rebuilt(res: Response, body: string): Response {
  const headers = new Headers(res.headers);
  headers.set("Content-Type", "application/json");
  headers.delete("Content-Length");
  return new Response(body, { status: res.status, statusText: res.statusText, headers });
}

/** Milliseconds to wait according to `Retry-After` or `X-RateLimit-Reset`, between 100 ms and 30 s. */
export function retryAfterMs(headers: Headers): number {
  const after = Number(headers.get("Retry-After") ?? headers.get("X-RateLimit-Reset") ?? "1");
  return Math.min(30_000, Math.max(100, Number.isFinite(after) ? after * 1000 : 1000));
}

/**
 * Creates a Client4 for `url` authenticated with `token`. When `stop` aborts, a request waiting out a 429 gives up
 * waiting and fails with that 429; requests already on the wire are left to finish.
 */
export function createClient(url: string, token: string, stop?: AbortSignal): Client4 {
  retryRateLimitedRequests(url);
  const client = new mm.Client4();
  client.setUrl(url);
  client.setToken(token);
  client.setUserAgent?.("mmxmpp");
  if (stop) {
    const options = client.getOptions.bind(client);
    client.getOptions = (opts) => Object.assign(options(opts), { [STOP]: stop });
  }
  return client;
}

/**
 * Runs one REST call and converts any failure into a BridgeError that names `what` and says whether to retry.
 * `explain` replaces the message for the HTTP statuses it lists (those errors are permanent).
 *
 * @example
 * ```ts
 * const me = await call("read the bot's own account", () => client.getMe());
 * await call("find channel x", () => client.getChannel("x"), { 404: "no such channel" });
 * ```
 */
export async function call<T>(
  what: string,
  fn: () => Promise<T>,
  explain: Partial<Record<number, string>> = {},
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const text = explain[statusOf(err) ?? 0];
    throw text ? new BridgeError(text, { cause: err }) : toBridgeError(what, err);
  }
}

/** HTTP status of a Client4 error, when the server said one. */
export function statusOf(err: unknown): number | undefined {
  const s = (err as { status_code?: unknown; cause?: { status_code?: unknown } })?.status_code ??
    (err as { cause?: { status_code?: unknown } })?.cause?.status_code;
  return typeof s === "number" ? s : undefined;
}

/**
 * A Client4 or fetch failure as a BridgeError: the HTTP status with what to do, or, without an answer, the root
 * cause. A transient failure that the settings cause (an untrusted certificate, http:// on a TLS port) carries
 * `kind: "configuration"`: retried at runtime like any network failure, it ends a start (see
 * {@link settingsFailure}).
 */
function toBridgeError(what: string, err: unknown): BridgeError {
  if (err instanceof BridgeError) return err;
  const status = statusOf(err);
  const serverId = (err as { server_error_id?: string })?.server_error_id;
  const message = (err as { message?: string })?.message;
  if (status === undefined) {
    // No status: the request never got an answer (network), or its answer broke off before Client4 could read it.
    // Either way the reason is at the end of the error's cause chain ("fetch failed" says nothing).
    const f = explainUnreachable(err);
    const unread = message === "Received invalid response from the server."
      ? "its answer could not be read: "
      : "";
    return new BridgeError(`cannot ${what}: ${unread}${describeFailure(f)}`, {
      transient: true,
      kind: f.settings ? "configuration" : undefined,
      cause: err,
    });
  }
  const detail = `${status}${serverId ? ` ${serverId}` : ""}${message ? `: ${message}` : ""}`;
  const hint = statusHint(status);
  return new BridgeError(`cannot ${what}: Mattermost answered ${detail}${hint ? ` (${hint})` : ""}`, {
    transient: status >= 500 || status === 429 || status === 408,
    cause: err,
  });
}

/**
 * `err` as a start failure: a failure the settings cause (see {@link toBridgeError}) becomes permanent, since
 * waiting cannot fix MM_URL or a certificate; anything else is unchanged.
 */
export function settingsFailure(err: unknown): unknown {
  if (err instanceof BridgeError && err.transient && err.kind === "configuration") {
    return new BridgeError(err.message, { kind: "configuration", cause: err.cause });
  }
  return err;
}
