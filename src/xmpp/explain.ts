/**
 * Why an XMPP login failed, told so that a person can act on it: the root cause (connection refused, the DNS name,
 * the TLS reason, the SASL condition) and the setting to change. The connector's start failures and the doctor's
 * login step both use it, so both say the same thing.
 *
 * @module
 */
import { type FailureKind, rootError } from "../core/errors.ts";

/** Where a login stopped: before authentication, during SASL, or binding the resource. */
export type LoginPhase = "connect" | "auth" | "bind";

/** What is known about the attempt, to name the settings in the hint. */
export interface LoginAttempt {
  /** `xmpp://host:port` or `xmpps://host:port`. */
  service: string;
  /** The bare JID that logged in. */
  account: string;
  /** Where its password comes from, e.g. "XMPP_PASSWORD". */
  passwordSetting: string;
  /** How to skip certificate checks where the attempt came from (a variable or a flag). */
  skipVerifySetting: string;
  /** Where the service address came from, e.g. "XMPP_SERVICE". */
  serviceSetting?: string;
  phase?: LoginPhase;
}

/** A login failure, explained. */
export interface XmppFailure {
  /** What went wrong, with its root cause ("connection refused (127.0.0.1:5222)"). */
  reason: string;
  /** What to do about it, naming the setting, when there is something to do. */
  fix?: string;
  /** Worth retrying as is (the server is down or unreachable right now). */
  transient: boolean;
  /** For a permanent failure: the account or the settings are at fault. */
  kind?: FailureKind;
  /** The server's condition (SASL or stream error), when it gave one. */
  condition?: string;
}

/** Socket errors that mean "not reachable right now": worth retrying, as after a disconnect. */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

/** Server conditions that go away by themselves: a server shutting down, overloaded, or slow. */
const PASSING_CONDITIONS = [
  "system-shutdown",
  "internal-server-error",
  "remote-connection-failed",
  "temporary-auth-failure",
  "connection-timeout",
];

/**
 * Explains a failed XMPP login.
 *
 * @example
 * ```ts
 * const f = explainXmppFailure(err, { service, account, passwordSetting: "XMPP_PASSWORD",
 *   skipVerifySetting: "XMPP_TLS_INSECURE_SKIP_VERIFY=true" });
 * log.error("{reason}; {fix}", f);
 * ```
 */
/** True when `err` (at its root) is a TLS certificate check that failed: an unknown issuer, a name mismatch … */
export function isCertificateRejection(err: unknown): boolean {
  const e = rootError(err);
  const code = e.code ?? "";
  const message = e.message ?? String(err);
  return /CERT|SELF_SIGNED|LEAF_SIGNATURE|ISSUER/.test(code) ||
    /certificate|self.signed|altnames/i.test(message);
}

export function explainXmppFailure(err: unknown, at: LoginAttempt): XmppFailure {
  const e = rootError(err);
  const condition = e.condition;
  const code = e.code ?? "";
  const message = e.message ?? String(err);
  const { host, port, scheme } = endpoint(at.service);
  const serviceSetting = at.serviceSetting ?? "XMPP_SERVICE";
  if (condition === "not-authorized") {
    return {
      reason: `the server refused the password for ${at.account} (not-authorized)`,
      fix: `check ${at.passwordSetting} for ${at.account}, and that the account exists`,
      transient: false,
      kind: "credentials",
      condition,
    };
  }
  if (condition === "account-disabled") {
    return {
      reason: `${at.account} is disabled (account-disabled)`,
      fix: "enable the account on the server",
      transient: false,
      kind: "credentials",
      condition,
    };
  }
  if (code === "ECONNREFUSED") {
    return {
      reason: `connection refused (${host}:${port})`,
      fix: `is the XMPP server running, and are the host and port in ${serviceSetting} right?`,
      transient: true,
    };
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return {
      reason: `DNS: ${code === "ENOTFOUND" ? "no such host" : "cannot resolve now"} ${host}`,
      fix: `check the host name in ${serviceSetting} (or XMPP_JID's domain, which it defaults to)`,
      transient: true,
    };
  }
  if (/WRONG_VERSION_NUMBER|InvalidContentType|wrong version number/.test(`${code} ${message}`)) {
    return {
      reason: `TLS: ${host}:${port} does not speak direct TLS (${scheme}://)`,
      fix: `use xmpp://${host}:${port} (STARTTLS, usually port 5222) in ${serviceSetting}; xmpps:// is ` +
        "for a direct-TLS port (usually 5223)",
      transient: false,
      kind: "configuration",
    };
  }
  if (isCertificateRejection(err)) {
    const mismatch = /ALTNAME|altnames/i.test(`${code} ${message}`);
    return {
      reason: `TLS: the server's certificate is not accepted (${message}${code ? `, ${code}` : ""})`,
      fix: mismatch
        ? `the certificate must name XMPP_JID's domain; or set ${at.skipVerifySetting} for a test`
        : `set XMPP_CA_FILE to the server's CA certificate (or ${at.skipVerifySetting} for a test)`,
      transient: false,
      kind: "configuration",
      condition,
    };
  }
  if (/No compatible mechanism/.test(message)) {
    return {
      reason: "the server offers no SASL mechanism the bridge speaks (SCRAM-SHA-1, PLAIN)",
      fix: "enable SCRAM-SHA-1 (or PLAIN over TLS) on the server",
      transient: false,
      kind: "configuration",
    };
  }
  if (/only PLAIN/.test(message)) {
    return {
      reason: message,
      fix: "enable TLS on the server: PLAIN is never sent unencrypted",
      transient: false,
      kind: "configuration",
    };
  }
  const passing = UNREACHABLE.has(code) || e.name === "TimeoutError" ||
    PASSING_CONDITIONS.includes(condition ?? "");
  const text = condition
    ? `${condition}${e.text ? ` (${e.text})` : ""}`
    : `${message}${code ? ` (${code})` : ""}`;
  if (e.name === "TimeoutError") {
    // Nothing was judged yet: the account and password may be fine; the server (or the way to it) is slow.
    return {
      reason: text,
      fix:
        `the server at ${host}:${port} is slow or overloaded: check its load and log (a later attempt may pass)`,
      transient: true,
      condition,
    };
  }
  if (at.phase === "bind") {
    return {
      reason: `binding the resource failed: ${text}`,
      fix: "check the server's log; a conflict means another session holds this resource",
      transient: passing,
      kind: passing ? undefined : "configuration",
      condition,
    };
  }
  return { reason: text, transient: passing, kind: passing ? undefined : "configuration", condition };
}

/**
 * Host, port and scheme of a service URL, for messages. Without a port in the URL: `defaultPort` (the component
 * port), else the client port of its scheme.
 */
function endpoint(service: string, defaultPort?: string): { host: string; port: string; scheme: string } {
  try {
    const u = new URL(service);
    const scheme = u.protocol.replace(":", "");
    return {
      host: u.hostname,
      port: u.port || defaultPort || (scheme === "xmpps" ? "5223" : "5222"),
      scheme,
    };
  } catch {
    return { host: service, port: defaultPort ?? "?", scheme: "xmpp" };
  }
}

/**
 * Explains a failed XEP-0114 component connection as `jid` at `service`: the bridge's component and the doctor's
 * component step both use it, so both say the same thing. The secret never appears: the server's refusal only names
 * its condition. Accepts the raw error or one wrapping it as `cause`.
 *
 * @example
 * ```ts
 * explainComponentFailure({ condition: "not-authorized" }, { jid: "bridge.example.org", service }).reason;
 * // "the server refused the handshake for bridge.example.org (not-authorized)"
 * ```
 */
export function explainComponentFailure(err: unknown, at: { jid: string; service: string }): XmppFailure {
  const outer = err as { condition?: string; code?: string; name?: string; cause?: unknown };
  const e = (outer?.condition || outer?.code ? outer : (outer?.cause ?? outer)) as {
    condition?: string;
    code?: string;
    message?: string;
    name?: string;
  };
  const { jid, service } = at;
  const { host, port } = endpoint(service, "5347");
  const portFix =
    `check XMPP_COMPONENT_SERVICE (${service}): is the component port (5347) open on loopback? ` +
    "(Prosody: component_ports and component_interfaces; the default service is port 5347 on XMPP_SERVICE's host)";
  switch (e?.condition) {
    case "not-authorized":
      return {
        reason: `the server refused the handshake for ${jid} (not-authorized)`,
        fix:
          `XMPP_COMPONENT_SECRET does not match the server's component_secret for ${jid}: copy it from the ` +
          `server's Component "${jid}" section (Prosody: component_secret)`,
        transient: false,
        kind: "configuration",
        condition: e.condition,
      };
    case "host-unknown":
    case "improper-addressing":
      return {
        reason: `the server answered ${e.condition}: it has no component ${jid} on this port`,
        fix:
          `the server knows no component named ${jid}: check XMPP_COMPONENT_JID, or add it to the server ` +
          `(Prosody: Component "${jid}" with component_secret) and reload it`,
        transient: false,
        kind: "configuration",
        condition: e.condition,
      };
    case "conflict":
      return {
        reason: `another connection already serves ${jid} (conflict)`,
        fix: "is a second bridge (or the doctor next to a running bridge) connected as this component?",
        transient: true,
        condition: e.condition,
      };
  }
  if (e?.code === "ECONNREFUSED") {
    return { reason: `${host}:${port} refused the connection`, fix: portFix, transient: true };
  }
  if (e?.code === "ENOTFOUND" || e?.code === "EAI_AGAIN") {
    return {
      reason: `cannot resolve ${host} (${e.code})`,
      fix: "check the host in XMPP_COMPONENT_SERVICE",
      transient: true,
    };
  }
  if (e?.name === "TimeoutError") {
    return { reason: `${host}:${port} did not answer in time`, transient: true };
  }
  return {
    reason: `the component connection failed: ${e?.condition ?? e?.message ?? String(err)}`,
    transient: true,
    condition: e?.condition,
  };
}
