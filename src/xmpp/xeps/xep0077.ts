/**
 * XEP-0077 In-Band Registration: creating accounts on a fresh, unauthenticated stream, and changing the password of
 * or deleting an account from that account's own session.
 *
 * Deleting (`<remove/>`) acts on whatever account the session is logged in as, so it is refused, before anything is
 * sent, on a protected account: the session the module was enabled on (the bridge's own), every JID given as
 * `protectedJids`, and every JID passed to {@link protectAccount}.
 *
 * Server errors become a {@link RegistrationError} whose `reason` says what happened (`taken`, `disabled`,
 * `rate-limited`…) and whose message says what to do.
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import { deadline } from "../../core/deadline.ts";
import { BridgeError, errorMessage } from "../../core/errors.ts";
import {
  createStreamClient,
  type Element,
  type TlsOptions,
  type XmppClient,
  type XmppStreamClient,
} from "../session/client.ts";
import type { Capabilities } from "./capabilities.ts";
import { explainXmppFailure } from "../explain.ts";
import { type DataForm, parseDataForm } from "../protocol/disco.ts";
import type { XepModule } from "./xep.ts";
import { NS_DATA, NS_REGISTER, NS_REGISTER_FEATURE } from "../protocol/ns.ts";

/** The XEP-0077 IQ namespace, also the disco#info feature. */
/** The stream feature a server offers on an unauthenticated stream when it accepts new registrations. */

/** How long to wait after a rate-limited registration when the server does not say (XEP-0077 has no field). */
export const RATE_LIMIT_RETRY_MS = 60_000;

/**
 * Why an operation failed:
 * - `taken`: the username is registered already;
 * - `disabled`: the server does not allow it (registration off, or not from this address);
 * - `rate-limited`: too many registrations lately; retry after `retryAfterMs`;
 * - `unreachable`: no stream could be opened (network, TLS, timeout); retry later;
 * - `protected`: refused locally, nothing was sent: the account is the bridge's own;
 * - `failed`: anything else; `condition` has the server's error condition.
 */
export type RegistrationFailureReason =
  | "taken"
  | "disabled"
  | "rate-limited"
  | "unreachable"
  | "protected"
  | "failed";

/** A failed XEP-0077 operation. */
export class RegistrationError extends BridgeError {
  /** What went wrong, see {@link RegistrationFailureReason}. */
  readonly reason: RegistrationFailureReason;
  /** The server's stanza error condition, e.g. `conflict`, when it answered with one. */
  readonly condition?: string;
  /** The server's error text, when it gave one. */
  readonly serverText?: string;

  constructor(
    reason: RegistrationFailureReason,
    message: string,
    opts: { condition?: string; serverText?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    const transient = reason === "rate-limited" || reason === "unreachable";
    super(message, { transient, retryAfterMs: opts.retryAfterMs, cause: opts.cause });
    this.name = "RegistrationError";
    this.reason = reason;
    this.condition = opts.condition;
    this.serverText = opts.serverText;
  }
}

/** Where to register: the server, as for {@link createStreamClient}. */
export interface RegistrationServer {
  /** `xmpp://host:port` or `xmpps://host:port`. */
  service: string;
  /** The domain accounts are created on. */
  domain: string;
  tls?: TlsOptions;
  /** Limit for opening the stream and for each answer. Default 15000. */
  timeoutMs?: number;
}

/** What the server asks for to register. */
export interface RegistrationFields {
  /** The server's instructions for a person. */
  instructions?: string;
  /** Names of the legacy fields asked for, e.g. `["username", "password", "email"]`. */
  fields: string[];
  /** The XEP-0004 form, when the server gives one; a client should then fill in this form. */
  form?: DataForm;
}

/** Options of {@link register}. */
export interface RegisterOptions extends RegistrationServer {
  username: string;
  password: string;
  /** Further fields the server requires (e.g. `email`), by field name. */
  fields?: Record<string, string>;
}

/** Options of {@link changePassword} and {@link cancelRegistration}. */
export interface AccountOptions {
  /** Bare JIDs that must never be changed or deleted, on top of those given to {@link protectAccount}. */
  protectedJids?: readonly string[];
  /** Limit for the server's answer. Default 15000. */
  timeoutMs?: number;
}

/** A session of the account to change: an authenticated client. */
export type AccountSession = Pick<XmppClient, "jid" | "iqCaller"> & {
  reconnect?: Pick<XmppClient["reconnect"], "stop">;
};

const protectedAccounts = new Set<string>();

/**
 * Protects the account `jid` (bare or full) for the life of the process: {@link cancelRegistration} and
 * {@link changePassword} then refuse to run on its sessions. Enabling the module protects the session's account.
 *
 * @example
 * ```ts
 * protectAccount("bridge@example.org");
 * ```
 */
export function protectAccount(jid: string): void {
  protectedAccounts.add(bareJid(jid));
}

/**
 * Asks the server, on a fresh unauthenticated stream, what a registration needs.
 *
 * @example
 * ```ts
 * const { instructions, fields, form } = await getRegistrationFields({ service, domain: "example.org" });
 * ```
 */
export function getRegistrationFields(opts: RegistrationServer): Promise<RegistrationFields> {
  return withStream(opts, (stream) => requestFields(stream, opts));
}

/**
 * Registers `username@domain` on a fresh, unauthenticated stream: asks for the fields, then submits the server's
 * form (or the legacy fields when it gives none). Negotiates STARTTLS when offered and never authenticates; refuses
 * to send a password over a stream without TLS. Rejects with a {@link RegistrationError}.
 *
 * @example
 * ```ts
 * try {
 *   await register({ service, domain: "example.org", username: "mm_alice", password });
 * } catch (err) {
 *   if (err instanceof RegistrationError && err.reason === "rate-limited") retryIn(err.retryAfterMs);
 * }
 * ```
 */
export function register(opts: RegisterOptions): Promise<{ jid: string }> {
  const jid = `${opts.username}@${opts.domain}`;
  return withStream(opts, async (stream) => {
    const asked = await requestFields(stream, opts);
    const values: Record<string, string> = {
      ...opts.fields,
      username: opts.username,
      password: opts.password,
    };
    // Legacy fields do not say which are required: send what we have and let the server say what is missing.
    const submitted = asked.form
      ? [submitForm(asked.form, values, opts.domain)]
      : Object.entries(values).map(([name, value]) => xml(name, {}, value));
    const query = xml("query", { xmlns: NS_REGISTER }, ...submitted);
    try {
      await stream.iqCaller.request(xml("iq", { type: "set" }, query), timeoutOf(opts));
    } catch (err) {
      throw fromServerError(err, `registering ${jid}`, opts.domain);
    }
    return { jid };
  });
}

/**
 * Changes the password of the account `client` is logged in as, from that session. Refused on a protected account.
 *
 * @example
 * ```ts
 * await changePassword(ghostSession, newPassword);
 * ```
 */
export async function changePassword(
  client: AccountSession,
  newPassword: string,
  opts: AccountOptions = {},
): Promise<void> {
  const jid = ownAccount(client, "change the password of", opts);
  const query = xml(
    "query",
    { xmlns: NS_REGISTER },
    xml("username", {}, jid.slice(0, jid.lastIndexOf("@"))),
    xml("password", {}, newPassword),
  );
  try {
    await client.iqCaller.request(xml("iq", { type: "set" }, query), timeoutOf(opts));
  } catch (err) {
    throw fromServerError(err, `changing the password of ${jid}`, domainOf(jid));
  }
}

/**
 * Deletes the account `client` is logged in as, from that session (`<remove/>`). The server then ends the session,
 * so this stops its reconnects; stop the client afterwards. Refused, with nothing sent, on a protected account.
 *
 * @example
 * ```ts
 * await cancelRegistration(ghostSession);
 * await ghostSession.stop();
 * ```
 */
export async function cancelRegistration(client: AccountSession, opts: AccountOptions = {}): Promise<void> {
  const jid = ownAccount(client, "delete", opts);
  try {
    await client.iqCaller.request(
      xml("iq", { type: "set" }, xml("query", { xmlns: NS_REGISTER }, xml("remove"))),
      timeoutOf(opts),
    );
  } catch (err) {
    throw fromServerError(err, `cancelling the registration of ${jid}`, domainOf(jid));
  }
  client.reconnect?.stop();
}

/** XEP-0077 bound to the bridge's server and session. */
export interface Xep0077Api {
  /**
   * True when the server advertises registration of new accounts (the `iq-register` stream feature). Prosody
   * lists `jabber:iq:register` in disco#info even with registration off (for password changes), so only this
   * tells whether {@link Xep0077Api.register} can work.
   */
  readonly registrationOpen: boolean;
  /** {@link getRegistrationFields} on the bridge's server. */
  getRegistrationFields(): Promise<RegistrationFields>;
  /** {@link register} on the bridge's server and domain. */
  register(username: string, password: string, fields?: Record<string, string>): Promise<{ jid: string }>;
  /** {@link changePassword}; refused on the bridge's own session and every protected JID. */
  changePassword(client: AccountSession, newPassword: string): Promise<void>;
  /** {@link cancelRegistration}; refused on the bridge's own session and every protected JID. */
  cancelRegistration(client: AccountSession): Promise<void>;
}

/**
 * XEP-0077 In-Band Registration. Handles `jabber:iq:register`: registering accounts on fresh streams, changing
 * passwords and deleting accounts from their own sessions. Offered when the server lists `jabber:iq:register` in
 * disco#info or offers the registration stream feature. Enabling it protects the session's own account.
 */
export const xep0077: XepModule<Xep0077Api> = {
  id: "xep0077",
  name: "XEP-0077 In-Band Registration",
  namespaces: [NS_REGISTER],
  isOffered: (caps: Capabilities) => caps.has(NS_REGISTER) || caps.streamFeatures.has(NS_REGISTER_FEATURE),
  create({ client, caps, options }) {
    const own = client.jid?.bare().toString();
    if (own) protectAccount(own);
    for (const jid of options.protectedJids ?? []) protectAccount(jid);
    const server = { service: options.service, domain: options.domain, tls: options.tls };
    const account = { protectedJids: options.protectedJids };
    return {
      registrationOpen: caps.streamFeatures.has(NS_REGISTER_FEATURE),
      getRegistrationFields: () => getRegistrationFields(server),
      register: (username, password, fields) => register({ ...server, username, password, fields }),
      changePassword: (session, newPassword) => changePassword(session, newPassword, account),
      cancelRegistration: (session) => cancelRegistration(session, account),
    };
  },
};

/** The bare JID `client` is logged in as, or a RegistrationError when it is protected or unknown. */
function ownAccount(client: AccountSession, action: string, opts: AccountOptions): string {
  const jid = client.jid?.bare().toString();
  if (!jid) {
    throw new RegistrationError("failed", `cannot ${action} an account through a session that is not online`);
  }
  const bare = bareJid(jid);
  if (protectedAccounts.has(bare) || (opts.protectedJids ?? []).some((p) => bareJid(p) === bare)) {
    throw new RegistrationError(
      "protected",
      `refusing to ${action} ${bare}: the account is protected (the bridge's own); nothing was sent`,
    );
  }
  return bare;
}

async function requestFields(
  stream: XmppStreamClient,
  opts: RegistrationServer,
): Promise<RegistrationFields> {
  let res: Element;
  try {
    res = await stream.iqCaller.request(
      xml("iq", { type: "get" }, xml("query", { xmlns: NS_REGISTER })),
      timeoutOf(opts),
    );
  } catch (err) {
    throw fromServerError(err, "asking for the registration fields", opts.domain);
  }
  const query = res.getChild("query", NS_REGISTER);
  const x = query?.getChild("x", NS_DATA);
  const ignored = new Set(["instructions", "registered", "remove", "x"]);
  return {
    instructions: query?.getChildText("instructions") ?? undefined,
    fields: (query?.getChildElements() ?? [])
      .filter((el: Element) => el.getNS() === NS_REGISTER && !ignored.has(el.name))
      .map((el: Element) => String(el.name)),
    form: x ? parseDataForm(x) : undefined,
  };
}

/** The submitted form: hidden fields as given, our values, and an error for required fields we cannot fill. */
function submitForm(form: DataForm, values: Record<string, string>, domain: string): Element {
  const missing = form.fields.filter((f) =>
    f.required && f.var && f.type !== "hidden" && f.type !== "fixed" && !(f.var in values)
  );
  if (missing.length > 0) {
    const names = missing.map((f) => f.label ? `${f.var} (${f.label})` : f.var).join(", ");
    throw new RegistrationError(
      "failed",
      `${domain} also requires ${names} to register; a bridge cannot fill in a CAPTCHA, so use a server ` +
        "that registers without one, or pass the fields",
    );
  }
  const fields = form.fields.flatMap((f) => {
    if (!f.var) return [];
    const given = values[f.var];
    const submitted = given !== undefined ? [given] : f.type === "hidden" ? f.values : [];
    return submitted.length
      ? [xml("field", { var: f.var }, ...submitted.map((v) => xml("value", {}, v)))]
      : [];
  });
  return xml("x", { xmlns: NS_DATA, type: "submit" }, ...fields);
}

/** Opens a stream up to authentication, runs `fn` on it, and closes it. */
async function withStream<T>(
  opts: RegistrationServer,
  fn: (stream: XmppStreamClient) => Promise<T>,
): Promise<T> {
  const stream = createStreamClient(opts);
  let failure: unknown;
  // An entity without an error listener throws; errors during start surface through start().
  stream.on("error", (err: never) => failure ??= err);
  try {
    await deadline(stream.start(), timeoutOf(opts), () => new Error("timed out")).catch((err) => {
      throw new RegistrationError(
        "unreachable",
        `cannot open a stream to ${opts.service} for ${opts.domain}: ${describe(failure ?? err, opts)}`,
        { cause: err },
      );
    });
    if (!stream.isSecure()) {
      throw new RegistrationError(
        "failed",
        `${opts.service} offers no TLS: registration sends a password, so it needs STARTTLS or xmpps://`,
      );
    }
    return await fn(stream);
  } finally {
    await stream.stop().catch(() => {});
  }
}

/** Maps the server's stanza error (or a timeout) for `action` to a RegistrationError. */
function fromServerError(err: unknown, action: string, domain: string): RegistrationError {
  if (err instanceof RegistrationError) return err;
  const e = err as { condition?: string; type?: string; text?: string; name?: string };
  if (!e?.condition) {
    const what = e?.name === "TimeoutError" ? "no answer in time" : errorMessage(err);
    return new RegistrationError("unreachable", `${action} failed: ${what}; try again later`, { cause: err });
  }
  const { condition, type } = e;
  const serverText = e.text || undefined;
  const said = serverText ? ` ("${serverText}")` : "";
  const opts = { condition, serverText, cause: err };
  switch (condition) {
    case "conflict":
      return new RegistrationError(
        "taken",
        `${action} failed: the username is taken${said}; choose another`,
        opts,
      );
    case "not-allowed":
    case "service-unavailable":
    case "feature-not-implemented":
      return new RegistrationError(
        "disabled",
        `${action} failed: ${domain} does not allow in-band registration (${condition})${said}; enable it ` +
          "(Prosody: allow_registration = true) or use another ghost mode",
        opts,
      );
    case "forbidden":
      return new RegistrationError(
        "disabled",
        `${action} failed: ${domain} does not allow registration from this address (forbidden)${said}; ` +
          "allow the bridge's address (Prosody: registration_allowlist)",
        opts,
      );
    case "resource-constraint":
    case "policy-violation":
      if (condition === "resource-constraint" || type === "wait") {
        return new RegistrationError(
          "rate-limited",
          `${action} failed: ${domain} rate-limits registrations (${condition})${said}; wait and retry ` +
            "(Prosody: min_seconds_between_registrations)",
          { ...opts, retryAfterMs: RATE_LIMIT_RETRY_MS },
        );
      }
  }
  return new RegistrationError("failed", `${action} failed: ${condition}${said}`, opts);
}

/** The root cause of a stream that did not open, and what to do (the bridge's own login says the same). */
function describe(err: unknown, opts: RegistrationServer): string {
  const f = explainXmppFailure(err, {
    service: opts.service,
    account: opts.domain,
    passwordSetting: "the password",
    skipVerifySetting: "XMPP_TLS_INSECURE_SKIP_VERIFY=true",
  });
  return f.fix ? `${f.reason}; ${f.fix}` : f.reason;
}

function bareJid(jid: string): string {
  return jid.split("/")[0].toLowerCase();
}

function domainOf(bare: string): string {
  return bare.slice(bare.lastIndexOf("@") + 1);
}

function timeoutOf(opts: { timeoutMs?: number }): number {
  return opts.timeoutMs ?? 15_000;
}
