/**
 * The usernames of Mattermost puppets: `{prefix}{localpart}`, made valid for Mattermost, with a suffix derived from
 * the XMPP identity when the name is taken, so that the same person always gets the same name.
 *
 * Mattermost's rules (`model/user.go` `IsValidUsername`): 1–64 of `a-z 0-9 . - _`, not `all`, `channel`,
 * `matterbot` or `system`. Older servers and the webapp also want a letter first, and `here` is a mention keyword:
 * puppet names keep to those too.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Longest Mattermost username (`model.UserNameMaxLength`). */
export const USERNAME_MAX_LENGTH = 64;

/** Usernames Mattermost refuses (`restrictedUsernames`), and the mention keyword `here`. */
const RESERVED = new Set(["all", "channel", "here", "matterbot", "system"]);

/**
 * Whether `name` is a username a puppet may have: valid for Mattermost, starting with a letter, not reserved.
 *
 * @example
 * ```ts
 * isPuppetUsername("xmpp-alice"); // true
 * isPuppetUsername("here"); // false
 * ```
 */
export function isPuppetUsername(name: string): boolean {
  return /^[a-z][a-z0-9._-]{0,63}$/.test(name) && !RESERVED.has(name);
}

/**
 * What a puppet's username is made from: the localpart of the identity when it is a bare JID (the room revealed the
 * real JID), else the nick (an occupant-id says nothing a person would recognise).
 *
 * @example
 * ```ts
 * usernameSource("alice@example.org", "Ally"); // "alice"
 * usernameSource("Zm9vYmFy", "Ally"); // "Ally"
 * ```
 */
export function usernameSource(identity: string, nick: string): string {
  const jid = /^([^@/\s]+)@[^@/\s]+$/.exec(identity);
  return jid ? jid[1] : nick;
}

/**
 * The `attempt`-th candidate username (0: none taken yet) for the user `identity` whose name is `source`:
 * `{prefix}{source}` lowercased, accents dropped, any other character a `-`, without a trailing `.`, `-` or `_`
 * (which an @mention would not include). From attempt 1 on it ends in `-` and a suffix of the identity's hash that
 * grows with the attempt: stable for one identity, different for another.
 *
 * @example
 * ```ts
 * puppetUsername("xmpp-", "Élodie B.", "elo@example.org"); // "xmpp-elodie-b"
 * puppetUsername("xmpp-", "alice", "alice@example.org", 1); // "xmpp-alice-" + 4 hex digits
 * ```
 */
export function puppetUsername(prefix: string, source: string, identity: string, attempt = 0): string {
  let local = source.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-").replace(/-{2,}/g, "-").replace(/^[._-]+|[._-]+$/g, "");
  if (local === "") local = "user";
  let name = `${prefix}${local}`;
  if (!/^[a-z]/.test(name)) name = `x-${name}`;
  const suffix = attempt > 0 ? `-${hashOf(identity).slice(0, 2 + 2 * attempt)}` : "";
  name = name.slice(0, USERNAME_MAX_LENGTH - suffix.length).replace(/[._-]+$/, "") + suffix;
  return RESERVED.has(name) ? `${name}-${hashOf(identity).slice(0, 4)}` : name;
}

/**
 * The e-mail address of a puppet: on the reserved `.invalid` domain (RFC 2606), which no mail is ever delivered to.
 * Mattermost requires one, unique, so it is made from the (unique) username.
 */
export function puppetEmail(username: string): string {
  return `${username}@mmxmpp-puppets.invalid`;
}

/**
 * What the puppet's props store of the identity it stands for: a hash, so that another Mattermost user reading the
 * profile does not learn a real JID the room revealed only to the bridge; enough to recognise the puppet again.
 */
export function identityTag(identity: string): string {
  return hashOf(identity).slice(0, 32);
}

function hashOf(identity: string): string {
  return createHash("sha256").update(identity).digest("hex");
}
