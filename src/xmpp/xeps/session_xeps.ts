/**
 * Every XEP module the bridge has, and the one call that discovers what the server offers and enables them.
 * Adding an XEP is a new `xepNNNN.ts` and one line in {@link ALL_XEPS}.
 *
 * @module
 */
import type { XmppClient } from "../session/client.ts";
import { type Capabilities, discoverCapabilities, type DiscoverOptions } from "./capabilities.ts";
import { type EnabledXeps, enableXeps, type XepModule, type XepOptions } from "./xep.ts";
import { xep0077 } from "./xep0077.ts";
import { xep0363 } from "./xep0363.ts";

/** All XEP modules, in the order they are enabled. */
export const ALL_XEPS: readonly XepModule<unknown>[] = [
  xep0077,
  xep0363,
];

/** What {@link discoverXeps} found and enabled. */
export interface SessionXeps {
  caps: Capabilities;
  xeps: EnabledXeps;
}

/**
 * Discovers the server's capabilities on the online session `client` (logging a one-line summary) and enables the
 * modules of {@link ALL_XEPS} it offers. Call it once per client, after its first "online". Rejects when the server
 * does not answer disco#info.
 *
 * @example
 * ```ts
 * const { caps, xeps } = await discoverXeps(client, { service, domain: "example.org", protectedJids: [jid] });
 * const ibr = xeps.get(xep0077); // Xep0077Api | undefined
 * ```
 */
export async function discoverXeps(
  client: XmppClient,
  options: XepOptions,
  discover: DiscoverOptions & { modules?: readonly XepModule<unknown>[] } = {},
): Promise<SessionXeps> {
  const caps = await discoverCapabilities(client, options.domain, discover);
  return { caps, xeps: enableXeps({ client, caps, options }, discover.modules ?? ALL_XEPS) };
}
