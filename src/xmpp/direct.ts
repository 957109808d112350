/**
 * The XMPP side of a direct-message portal: the 1:1 conversation between an XMPP user (the peer) and the ghost or
 * puppet JID that stands for a user of the other network, named by one channel id.
 *
 * The id is `{peer}<>{ghost}`, both bare JIDs. `<` and `>` may appear in no bare JID (RFC 7622 forbids them in a
 * localpart, and a domain is a host name), so a direct channel can never be taken for a room's JID, nor a room's JID
 * for one; everything that needs to tell them apart asks {@link parseDirectChannel}.
 *
 * @module
 */

/** The two ends of a 1:1 conversation, as bare JIDs. */
export interface DirectPair {
  /** The XMPP user. */
  peer: string;
  /** The ghost (ibr) or puppet (component) JID that stands for the other network's user. */
  ghost: string;
}

const SEPARATOR = "<>";

/**
 * The channel id of the conversation between `peer` and `ghost` (bare or full JIDs; resources are dropped, case is
 * folded as JID comparison does for the localpart and domain).
 *
 * @example
 * ```ts
 * directChannel("Alice@Example.org/phone", "mm_bob@example.org"); // "alice@example.org<>mm_bob@example.org"
 * ```
 */
export function directChannel(peer: string, ghost: string): string {
  return `${bareJid(peer)}${SEPARATOR}${bareJid(ghost)}`;
}

/**
 * The two ends named by a direct channel id, or undefined when `channel` is not one (a room's JID).
 *
 * @example
 * ```ts
 * parseDirectChannel("alice@example.org<>mm_bob@example.org"); // { peer: "alice@example.org", ghost: "mm_bob@…" }
 * parseDirectChannel("room@conference.example.org"); // undefined
 * ```
 */
export function parseDirectChannel(channel: string): DirectPair | undefined {
  const at = channel.indexOf(SEPARATOR);
  if (at < 0) return undefined;
  const peer = channel.slice(0, at);
  const ghost = channel.slice(at + SEPARATOR.length);
  if (!isBareJid(peer) || !isBareJid(ghost)) return undefined;
  return { peer, ghost };
}

/** True when `channel` names a 1:1 conversation rather than a room. */
export function isDirectChannel(channel: string): boolean {
  return parseDirectChannel(channel) !== undefined;
}

/** `jid` without its resource, lowercased. */
export function bareJid(jid: string): string {
  const slash = jid.indexOf("/");
  return (slash < 0 ? jid : jid.slice(0, slash)).toLowerCase();
}

/** The domain of `jid`. */
export function domainOf(jid: string): string {
  const bare = bareJid(jid);
  return bare.slice(bare.indexOf("@") + 1);
}

/**
 * Whether a user of `jid`'s server may write to the bridge's users: its domain is one of `allowed`, or a subdomain
 * of an entry written `*.example.org`.
 *
 * @example
 * ```ts
 * domainAllowed("alice@example.org/phone", ["example.org"]); // true
 * domainAllowed("mallory@evil.example", ["example.org"]); // false
 * ```
 */
export function domainAllowed(jid: string, allowed: readonly string[]): boolean {
  const domain = domainOf(jid);
  return allowed.some((entry) => {
    const e = entry.toLowerCase();
    return e.startsWith("*.") ? domain.endsWith(e.slice(1)) : domain === e;
  });
}

function isBareJid(jid: string): boolean {
  const at = jid.indexOf("@");
  return at > 0 && at < jid.length - 1 && !/[\s/<>@"&':]/.test(jid.slice(0, at) + jid.slice(at + 1));
}
