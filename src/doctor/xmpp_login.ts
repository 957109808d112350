/**
 * A login with the bridge's own XMPP client, timed per phase (SASL, bind), with failures explained.
 *
 * @module
 */
import { createXmppClient, type Element, type XmppClient, type XmppClientOptions } from "../xmpp/client.ts";
import { deadline } from "../core/deadline.ts";
import { StepFailure } from "./report.ts";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

/** A session that is online. Stop it with `client.stop()`. */
export interface Login {
  client: XmppClient;
  /** The bound full JID. */
  jid: string;
  mechanism: string;
  saslMs: number;
  bindMs: number;
}

/** Where a login stopped. */
export type LoginPhase = "connect" | "auth" | "bind";

/** A login that did not complete: the phase it stopped in, and (for SASL) the server's condition. */
export class LoginError extends StepFailure {
  constructor(
    message: string,
    fix: string | undefined,
    readonly phase: LoginPhase,
    readonly condition?: string,
  ) {
    super(message, fix);
    this.name = "LoginError";
  }
}

/**
 * Logs in as `opts.username` and binds `opts.resource`. Rejects with a {@link LoginError}; `what` names the account
 * in messages and `passwordSetting` where its password comes from.
 *
 * @example
 * ```ts
 * const session = await login({ service, domain, username, password, resource, tls }, "XMPP_PASSWORD");
 * await session.client.stop();
 * ```
 */
export async function login(
  opts: XmppClientOptions,
  passwordSetting: string,
  timeoutMs = 15_000,
): Promise<Login> {
  const client = createXmppClient(opts);
  client.reconnect.stop();
  const account = `${opts.username}@${opts.domain}`;
  const at: { auth?: number; success?: number; bind?: number; online?: number } = {};
  client.on("send", (el: Element) => {
    if (el.is("auth", NS_SASL)) at.auth ??= performance.now();
    if (el.is("iq") && el.getChild("bind", NS_BIND)) at.bind ??= performance.now();
  });
  client.on("element", (el: Element) => {
    if (el.is("success", NS_SASL)) at.success = performance.now();
  });
  let failure: unknown;
  client.on("error", (err: never) => failure ??= err);
  try {
    await deadline(
      client.start(),
      timeoutMs,
      () => new Error(`no answer from ${opts.service} within ${timeoutMs / 1000} s`),
    );
    at.online = performance.now();
  } catch (err) {
    await client.stop().catch(() => {});
    const phase: LoginPhase = at.success ? "bind" : at.auth ? "auth" : "connect";
    throw explain(failure ?? err, phase, account, passwordSetting);
  }
  return {
    client,
    jid: String(client.jid),
    mechanism: client.negotiated.mechanism ?? "?",
    saslMs: (at.success ?? at.online) - (at.auth ?? at.online),
    bindMs: at.online - (at.bind ?? at.online),
  };
}

function explain(err: unknown, phase: LoginPhase, account: string, passwordSetting: string): LoginError {
  const e = err as { condition?: string; code?: string; message?: string; text?: string };
  const condition = e?.condition;
  const message = e?.message ?? String(err);
  if (condition === "not-authorized") {
    return new LoginError(
      `the server refused the password for ${account} (not-authorized)`,
      `check ${passwordSetting} for ${account}, and that the account exists`,
      phase,
      condition,
    );
  }
  if (condition === "account-disabled") {
    return new LoginError(
      `${account} is disabled (account-disabled)`,
      "enable the account on the server",
      phase,
    );
  }
  if (/No compatible mechanism/.test(message)) {
    return new LoginError(
      "the server offers no SASL mechanism the bridge speaks (SCRAM-SHA-1, PLAIN)",
      "enable SCRAM-SHA-1 (or PLAIN over TLS) on the server",
      phase,
    );
  }
  if (/only PLAIN/.test(message)) {
    return new LoginError(message, "enable TLS on the server: PLAIN is never sent unencrypted", phase);
  }
  if (/certificate|self.signed|altnames/i.test(message) || /CERT/.test(e?.code ?? "")) {
    return new LoginError(
      `TLS failed: ${message}`,
      "set XMPP_CA_FILE to the server's CA certificate (or --insecure-skip-verify for a test)",
      phase,
    );
  }
  const text = condition ? `${condition}${e?.text ? ` (${e.text})` : ""}` : message;
  return new LoginError(
    phase === "bind" ? `binding the resource failed: ${text}` : text,
    phase === "bind"
      ? "check the server's log; a conflict means another session holds this resource"
      : undefined,
    phase,
    condition,
  );
}
