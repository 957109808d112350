/**
 * Why Mattermost could not be reached or used, told so that a person can act on it. A failed `fetch` says only
 * "fetch failed"; the reason (connection refused, the DNS name, the TLS problem) is in its `cause` chain, in the
 * words of Deno's HTTP stack. The REST client (api.ts), the connector's websocket and the doctor's Mattermost steps
 * all explain failures here, so that they say the same thing.
 *
 * @module
 */
import { rootError } from "../core/errors.ts";

/** A failure to reach Mattermost, explained. */
export interface MattermostFailure {
  /** The root cause, e.g. "connection refused (127.0.0.1:8065)". */
  reason: string;
  /** What to do, naming MM_URL where it is at fault. */
  hint?: string;
  /**
   * True when the settings are at fault (the certificate is not trusted, the scheme does not match the port): a
   * retry with the same MM_URL cannot help. Otherwise the server may just be down or unreachable right now.
   */
  settings: boolean;
}

/** The hint for an untrusted certificate: Mattermost has no CA variable of its own; Deno reads DENO_CERT. */
const TRUST_HINT = "trust its CA: add it to this machine's CA store, or set DENO_CERT=/path/to/ca.pem " +
  "in the bridge's environment";

/** Deno (rustls) certificate errors → what they mean. */
const CERTIFICATE_PROBLEMS: Array<[RegExp, string, string]> = [
  [/UnknownIssuer/, "unknown issuer (self-signed, or signed by a private CA)", TRUST_HINT],
  [/CaUsedAsEndEntity/, "a CA certificate is used as the server's own certificate", TRUST_HINT],
  [
    /NotValidForName/,
    "it does not name this host",
    "use the host name the certificate is issued for in MM_URL",
  ],
  [/Expired/, "it has expired", "renew Mattermost's certificate"],
  [/NotValidYet/, "it is not valid yet", "check the clocks of this machine and the server"],
  [/Revoked/, "it has been revoked", "renew Mattermost's certificate"],
];

/**
 * Explains why a request to `url` (a Mattermost URL, http(s) or ws(s); by default the one the error names) got no
 * answer, from any error `fetch`, a WebSocket or Client4 gives.
 *
 * @example
 * ```ts
 * const f = explainUnreachable(err, "http://127.0.0.1:8065");
 * f.reason; // "connection refused (127.0.0.1:8065)"
 * ```
 */
export function explainUnreachable(err: unknown, url?: string): MattermostFailure {
  const root = rootError(err);
  // DOMExceptions have numeric codes, which say nothing here.
  const text = [root.message, typeof root.code === "string" ? root.code : ""].filter(Boolean).join(" ") ||
    String(err);
  // Deno names the URL in its message: "error sending request for url (https://…/api/v4/users/me): …".
  const { host, hostname, secure } = endpoint(
    url ?? /for (?:url \()?((?:http|ws)s?:\/\/[^\s)]+)/.exec(text)?.[1] ?? "",
  );
  if (root.name === "TimeoutError" || /timed out|deadline has elapsed/i.test(text)) {
    return {
      reason: `no answer from ${host} in time`,
      hint: "check that MM_URL's host and port are right and that no firewall drops the packets",
      settings: false,
    };
  }
  if (/Connection refused|ECONNREFUSED/i.test(text)) {
    return {
      reason: `connection refused (${host})`,
      hint: "is Mattermost running, and are the host and port in MM_URL right?",
      settings: false,
    };
  }
  if (
    /dns error|failed to lookup address|Name or service not known|ENOTFOUND|No address associated/i.test(text)
  ) {
    return {
      reason: `DNS: no such host ${hostname}`,
      hint: "check the host name in MM_URL",
      settings: false,
    };
  }
  const cert = /invalid peer certificate: (.*)$/m.exec(text);
  if (cert) {
    const [, what, hint] = CERTIFICATE_PROBLEMS.find(([pattern]) => pattern.test(cert[1])) ??
      [undefined, cert[1], TRUST_HINT];
    return { reason: `certificate of ${host} not accepted: ${what}`, hint, settings: true };
  }
  if (/InvalidContentType|wrong version number/i.test(text) && secure) {
    return {
      reason: `${host} does not speak TLS`,
      hint: "use http:// in MM_URL for this port, or the port Mattermost serves HTTPS on",
      settings: true,
    };
  }
  if (/invalid HTTP version parsed|invalid HTTP status-code|HTTP\/0\.9/i.test(text) && !secure) {
    return {
      reason: `${host} does not answer plain HTTP`,
      hint: "it may expect TLS: use https:// in MM_URL",
      settings: true,
    };
  }
  const upgrade = /Invalid status code:? (\d+)/.exec(text);
  if (upgrade) {
    return {
      reason: `${host} refused the websocket upgrade (HTTP ${upgrade[1]})`,
      hint: "the proxy in front of Mattermost must pass websocket upgrades on /api/v4/websocket",
      settings: true,
    };
  }
  if (/Connection reset|ECONNRESET|connection closed before message completed/i.test(text)) {
    return {
      reason: `connection reset by ${host}`,
      hint: "check the proxy in front of Mattermost",
      settings: false,
    };
  }
  if (/tcp connect error|No route to host|Network is unreachable|EHOSTUNREACH|ENETUNREACH/i.test(text)) {
    return {
      reason: `cannot connect to ${host} (${lastClause(text)})`,
      hint: "is Mattermost running, and are the host and port in MM_URL right?",
      settings: false,
    };
  }
  return { reason: lastClause(text), settings: false };
}

/** A failure as one line: reason, then the hint. */
export function describeFailure(f: { reason: string; hint?: string }): string {
  return f.hint ? `${f.reason}; ${f.hint}` : f.reason;
}

/** What to do about an HTTP status Mattermost answered, when the status alone tells. */
export function statusHint(status: number): string | undefined {
  if (status === 401) return "the token is invalid or revoked: check MM_TOKEN";
  if (status === 403) {
    return "the bot lacks permission: add it to the team/channel or give it the needed role";
  }
  return undefined;
}

/**
 * The hint for a request that should exist on every Mattermost but got 404: MM_URL is not the base URL.
 */
export const BASE_URL_HINT =
  "is MM_URL Mattermost's base URL, the address it opens at in a browser (without /api/v4 or a team name)?";

/** The last, most specific clause of a nested error text ("a: b: c" → "c"), without Deno's URL preamble. */
function lastClause(text: string): string {
  const parts = text.split(/: (?=[^:]*$)/);
  const last = parts[parts.length - 1].trim();
  return last || text;
}

function endpoint(url: string): { host: string; hostname: string; secure: boolean } {
  try {
    const u = new URL(url);
    const secure = u.protocol === "https:" || u.protocol === "wss:";
    const port = u.port || (secure ? "443" : "80");
    return { host: `${u.hostname}:${port}`, hostname: u.hostname, secure };
  } catch {
    return { host: url || "Mattermost", hostname: url || "Mattermost", secure: false };
  }
}
