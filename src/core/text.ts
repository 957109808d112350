/**
 * Text helpers shared by both edges: rune-aware splitting and name templates.
 *
 * @module
 */

/** Number of Unicode code points ("runes") in `text`, which is what Mattermost counts. */
export function runeLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * Splits `text` into pieces of at most `maxRunes` code points, keeping order.
 *
 * It prefers to cut after a newline, then after whitespace, in the last quarter of a piece, and never splits a
 * surrogate pair. Joining the pieces gives back `text` exactly.
 *
 * @example
 * ```ts
 * splitRunes("a".repeat(20_000), 16_383).length; // 2
 * ```
 */
export function splitRunes(text: string, maxRunes: number): string[] {
  if (maxRunes < 1) throw new RangeError("maxRunes must be at least 1");
  const runes = [...text];
  if (runes.length <= maxRunes) return [text];
  const pieces: string[] = [];
  let start = 0;
  while (runes.length - start > maxRunes) {
    const hardEnd = start + maxRunes;
    const floor = start + Math.floor(maxRunes * 0.75);
    let cut = hardEnd;
    const newline = lastIndexIn(runes, (r) => r === "\n", floor, hardEnd);
    if (newline >= 0) cut = newline + 1;
    else {
      const space = lastIndexIn(runes, (r) => /\s/.test(r), floor, hardEnd);
      if (space >= 0) cut = space + 1;
    }
    pieces.push(runes.slice(start, cut).join(""));
    start = cut;
  }
  pieces.push(runes.slice(start).join(""));
  return pieces;
}

function lastIndexIn(runes: string[], match: (r: string) => boolean, from: number, to: number): number {
  for (let i = to - 1; i >= from; i--) if (match(runes[i])) return i;
  return -1;
}

/**
 * Fills `{name}` placeholders of a name template; unknown placeholders are left as written.
 *
 * @example
 * ```ts
 * renderTemplate("{nick} (xmpp)", { nick: "alice" }); // "alice (xmpp)"
 * ```
 */
export function renderTemplate(template: string, values: Record<string, string | undefined>): string {
  return template.replace(/\{([a-z_]+)\}/g, (whole, key: string) => values[key] ?? whole);
}
