/**
 * Mentions on their way in from XMPP: a Mattermost user who speaks in a room as their own occupant (an `ibr`
 * ghost, a `component` puppet) is named there by their nick; on Mattermost that becomes their `@username`.
 *
 * What counts as naming them is what XMPP clients write when one addresses an occupant: the nick at the start of a
 * line followed by `:` or `,` (what a click on a nick inserts), or `@nick` anywhere. A nick that merely appears in a
 * sentence is left alone: nicks are often ordinary words ("will", "max"), and a mention notifies.
 *
 * @module
 */

/** One ghost in a room: its nick there and the Mattermost username it stands for. */
export interface GhostName {
  nick: string;
  username: string;
}

/**
 * `text` with each ghost addressed by nick written as the Mattermost mention `@username`.
 *
 * @example
 * ```ts
 * ghostMentions("Bob Smith: lunch?", [{ nick: "Bob Smith", username: "bob" }]); // "@bob: lunch?"
 * ```
 */
export function ghostMentions(text: string, ghosts: GhostName[]): string {
  if (ghosts.length === 0) return text;
  // Longest first, so that "bob smith" wins over "bob".
  const sorted = [...ghosts].filter((g) => g.nick !== "").sort((a, b) => b.nick.length - a.nick.length);
  const alternatives = sorted.map((g) => escapeRegExp(g.nick)).join("|");
  const usernameOf = (nick: string) =>
    sorted.find((g) => g.nick === nick)?.username ??
      sorted.find((g) => g.nick.toLowerCase() === nick.toLowerCase())!.username;
  // One pass: `nick:` at a line's start, or `@nick` not inside a word (`@will.k` is not `@will`).
  const mention = new RegExp(
    `^([ \\t]*)(${alternatives})(?=[:,](?:\\s|$))|(^|[^\\p{L}\\p{N}_.@-])@(${alternatives})` +
      `(?![\\p{L}\\p{N}_]|[.-][\\p{L}\\p{N}_])`,
    "gimu",
  );
  return text.replace(
    mention,
    (_whole, indent: string | undefined, nick: string | undefined, lead: string, atNick: string) =>
      indent !== undefined ? `${indent}@${usernameOf(nick!)}` : `${lead}@${usernameOf(atNick)}`,
  );
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
