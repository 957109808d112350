/**
 * The contract between the XMPP client core and the modules that implement one XEP each.
 *
 * A module states which XEP it implements and which namespaces it handles, decides from the discovered
 * {@link Capabilities} whether the server offers it, and creates a typed API bound to one session. The core enables
 * the modules the server offers with {@link enableXeps} and knows none of them by name; `xeps.ts` lists them all.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { TlsOptions, XmppClient } from "../session/client.ts";
import type { Capabilities } from "./capabilities.ts";
import { errorMessage } from "../../core/errors.ts";

const log = getLogger(["mmxmpp", "xmpp", "caps"]);

/** Settings every module may read; each uses what it needs. */
export interface XepOptions {
  /** Where the session connects (for modules that open extra streams, e.g. XEP-0077 registration). */
  service: string;
  /** The server's domain. */
  domain: string;
  tls?: TlsOptions;
  /**
   * Bare JIDs of accounts that a module must never change or delete (the bridge's own account). The session's own
   * bare JID is always protected as well.
   */
  protectedJids?: readonly string[];
}

/** What a module's {@link XepModule.create} is given. */
export interface XepContext {
  /** The bridge's authenticated session. */
  client: XmppClient;
  caps: Capabilities;
  options: XepOptions;
}

/** One XEP's implementation. `Api` is what callers get once it is enabled. */
export interface XepModule<Api> {
  /** Stable id, e.g. `"xep0077"`. */
  readonly id: string;
  /** Human-readable name for logs, e.g. `"XEP-0077 In-Band Registration"`. */
  readonly name: string;
  /** Namespaces the module handles (for logs and, later, our own disco#info answer). */
  readonly namespaces: readonly string[];
  /** True when the server offers what the module needs. Pure: no network calls. */
  isOffered(caps: Capabilities): boolean;
  /**
   * Builds the API for one session; called once per client by {@link enableXeps}, only when
   * {@link XepModule.isOffered}. May register stanza handlers on the client; must not do network calls.
   */
  create(ctx: XepContext): Api;
}

/** The enabled modules of one session, looked up by module with their API's type. */
export class EnabledXeps {
  readonly #apis = new Map<string, unknown>();
  readonly #names: string[] = [];

  /** @internal Used by {@link enableXeps}. */
  add<Api>(module: XepModule<Api>, api: Api): void {
    this.#apis.set(module.id, api);
    this.#names.push(module.name);
  }

  /**
   * The API of `module` when the server offers it, else undefined.
   *
   * @example
   * ```ts
   * const ibr = xeps.get(xep0077); // Xep0077Api | undefined
   * ```
   */
  get<Api>(module: XepModule<Api>): Api | undefined {
    return this.#apis.get(module.id) as Api | undefined;
  }

  /** Names of the enabled modules, in registry order. */
  get names(): readonly string[] {
    return this.#names;
  }
}

/**
 * Enables each of `modules` the server offers and returns their APIs. A module whose `create` throws is left out
 * and logged; the others are enabled.
 *
 * @example
 * ```ts
 * const xeps = enableXeps({ client, caps, options: { service, domain, tls } }, ALL_XEPS);
 * xeps.get(xep0077)?.registrationOpen;
 * ```
 */
export function enableXeps(ctx: XepContext, modules: readonly XepModule<unknown>[]): EnabledXeps {
  const enabled = new EnabledXeps();
  const skipped: string[] = [];
  for (const module of modules) {
    if (!module.isOffered(ctx.caps)) {
      skipped.push(module.name);
      continue;
    }
    try {
      enabled.add(module, module.create(ctx));
    } catch (err) {
      log.error("Could not enable {xep}: {error}", {
        xep: module.name,
        error: errorMessage(err),
      });
    }
  }
  log.info("XEPs enabled: {enabled}; not offered by the server: {skipped}", {
    enabled: enabled.names.join(", ") || "none",
    skipped: skipped.join(", ") || "none",
  });
  return enabled;
}
