/**
 * A login with the bridge's own XMPP client, timed per phase (SASL, bind), with failures explained.
 *
 * @module
 */
import {
  createXmppClient,
  type Element,
  type XmppClient,
  type XmppClientOptions,
} from "../xmpp/session/client.ts";
import { deadline } from "../core/deadline.ts";
import { NegotiationTimeout } from "../xmpp/session/settled_start.ts";
import { StepFailure } from "./report.ts";
import { explainXmppFailure, type LoginPhase } from "../xmpp/explain.ts";
import { NS_BIND, NS_SASL } from "../xmpp/protocol/ns.ts";

/** A session that is online. Stop it with `client.stop()`. */
export interface Login {
  client: XmppClient;
  /** The bound full JID. */
  jid: string;
  mechanism: string;
  saslMs: number;
  bindMs: number;
}

export type { LoginPhase };

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
    await deadline(client.start(), timeoutMs, () => {
      const during = at.success
        ? "binding the resource"
        : at.auth
        ? "authenticating (SASL)"
        : "opening the stream";
      return new NegotiationTimeout(
        `the server did not answer within ${timeoutMs / 1000} s while ${during} (${opts.service})`,
      );
    });
    at.online = performance.now();
  } catch (err) {
    await client.stop().catch(() => {});
    const phase: LoginPhase = at.success ? "bind" : at.auth ? "auth" : "connect";
    throw explain(failure ?? err, phase, opts, passwordSetting);
  }
  return {
    client,
    jid: String(client.jid),
    mechanism: client.negotiated.mechanism ?? "?",
    saslMs: (at.success ?? at.online) - (at.auth ?? at.online),
    bindMs: at.online - (at.bind ?? at.online),
  };
}

/** The shared explanation (xmpp/explain.ts), as the doctor reports it: the flags are named beside the variables. */
function explain(
  err: unknown,
  phase: LoginPhase,
  opts: XmppClientOptions,
  passwordSetting: string,
): LoginError {
  const f = explainXmppFailure(err, {
    service: opts.service,
    account: `${opts.username}@${opts.domain}`,
    passwordSetting,
    skipVerifySetting: "--insecure-skip-verify",
    serviceSetting: "XMPP_SERVICE (or --server)",
    phase,
  });
  return new LoginError(f.reason, f.fix, phase, f.condition);
}
