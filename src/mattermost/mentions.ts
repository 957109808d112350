/**
 * Keeps text bridged into Mattermost from notifying a whole channel through the bot.
 *
 * Mattermost notifies every member for `@channel` and `@all`, and the online ones for `@here`, in any post the
 * bot makes. A WORD JOINER (U+2060: invisible, no line break) after the `@` makes the server's mention parser
 * see two words, `@` and `channel`, while the text still reads as typed. A backslash would not do: Mattermost's
 * markdown turns `\@channel` back into text that notifies.
 *
 * @module
 */

const WORD_JOINER = "\u2060";

/** One letter as typed, or as the numeric character reference Mattermost's markdown decodes into it. */
function letter(c: string): string {
  const codes = [...new Set([c.toLowerCase(), c.toUpperCase()])].map((x) => x.codePointAt(0)!);
  return `(?:${c}|&#0*(?:${codes.join("|")});|&#x0*(?:${codes.map((n) => n.toString(16)).join("|")});)`;
}

/**
 * An `@` that starts a channel-wide mention. Mattermost matches the word case-insensitively and ignores
 * trailing punctuation, so anything but a letter or digit may follow (`@channel.`, `@here,`).
 */
const CHANNEL_WIDE = new RegExp(
  `@(?=(?:${
    ["channel", "all", "here"].map((w) => [...w].map(letter).join("")).join("|")
  })(?![\\p{L}\\p{N}]))`,
  "giu",
);

/**
 * Makes `@channel`, `@all` and `@here` in `text` notify nobody, changing nothing a reader sees.
 *
 * @example
 * ```ts
 * neutralizeChannelMentions("@here, lunch?"); // "@\u2060here, lunch?"
 * ```
 */
export function neutralizeChannelMentions(text: string): string {
  return text.replace(CHANNEL_WIDE, `@${WORD_JOINER}`);
}
