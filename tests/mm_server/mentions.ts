/**
 * Which mentions the Go server counts in a post's message: a port of `getExplicitMentions`
 * (`app/mention_parser.go`) and `StandardMentionParser.ProcessText` (`app/mention_parser_standard.go`) over the
 * text nodes that `markdown.Inspect` (`public/shared/markdown`) yields.
 *
 * What the server does, and this module with it:
 * - Only text of paragraphs counts: fenced and indented code blocks and inline code spans never mention anyone.
 * - Each run of adjacent text is one unit. A backslash escape (`\@`) or a numeric character reference is text
 *   too, so `\@channel` and `@channe&#108;` still mention the channel.
 * - Words are split on anything but letters, digits and `: . - _ @`; a word matches with trailing `. - : _`
 *   removed, so `@channel.`, `@channel,` and `(@channel)` count and `@channels` does not.
 *
 * Left out, each on the side of counting more: links and autolinks are read as plain text (the server skips
 * autolinks and link destinations), named character references are not decoded.
 *
 * @module
 */

/** What a message mentions. */
export interface MentionResults {
  /** `@here`: the channel members who are online. */
  here: boolean;
  /** `@channel`: every member. */
  channel: boolean;
  /** `@all`: every member. */
  all: boolean;
  /** Ids matched through `keywords`. */
  ids: Set<string>;
}

/**
 * Mentions in `message`. `keywords` maps a lowercase mention key (the server's `@username`) to user ids.
 *
 * @example
 * ```ts
 * explicitMentions("hi `@channel` \\@here", new Map()); // { here: true, channel: false, all: false, ids: Set{} }
 * ```
 */
export function explicitMentions(
  message: string,
  keywords: ReadonlyMap<string, string[]> = new Map(),
): MentionResults {
  const results: MentionResults = { here: false, channel: false, all: false, ids: new Set() };
  for (const text of textNodes(message)) processText(text, keywords, results);
  return results;
}

/** The merged text nodes of every paragraph, in order, as `markdown.Inspect` visits them. */
export function textNodes(message: string): string[] {
  return paragraphs(message).flatMap(inlineTexts);
}

const SYSTEM_MENTIONS = new Set(["@here", "@channel", "@all"]);

/** `ProcessText`: split into words and look each one up, with the server's trimming rules. */
function processText(text: string, keywords: ReadonlyMap<string, string[]>, results: MentionResults): void {
  const check = (word: string): boolean => {
    const lower = word.toLowerCase();
    if (lower === "@here") results.here = true;
    if (lower === "@channel") results.channel = true;
    if (lower === "@all") results.all = true;
    const ids = keywords.get(lower) ?? keywords.get(word);
    if (!ids) return false;
    for (const id of ids) results.ids.add(id);
    return true;
  };
  for (let word of text.split(/[^:.\-_@\p{L}\p{N}]+/u)) {
    if (word === "") continue;
    // `:word:` is taken for an emoji.
    if (word.startsWith(":") && word.endsWith(":")) continue;
    word = word.replace(/^[:.\-_]+/, "");
    if (check(word)) continue;
    let withoutSuffix = word;
    let found = false;
    while (withoutSuffix !== "" && ".-:_".includes(withoutSuffix.at(-1)!)) {
      withoutSuffix = withoutSuffix.slice(0, -1);
      if (check(withoutSuffix)) {
        found = true;
        break;
      }
    }
    if (found) continue;
    if (!SYSTEM_MENTIONS.has(word) && word.startsWith("@")) continue; // an unknown @name
    if (/[.\-:]/.test(word)) {
      for (const part of word.split(/[.\-:]/)) if (part !== "") check(part);
    }
  }
}

/**
 * The paragraphs of a message, each as its lines without indentation, joined by "\n". Fenced code (``` or ~~~,
 * closed by a fence at least as long) and indented code (4 columns, not continuing a paragraph) are left out;
 * `>` quote markers are removed. An indented line after a list item is kept as text, as it may continue the item.
 */
function paragraphs(message: string): string[] {
  const out: string[] = [];
  let para: string[] = [];
  let fence: string | undefined;
  let inIndentedCode = false;
  let seenListItem = false;
  const flush = () => {
    if (para.length) out.push(para.join("\n"));
    para = [];
  };
  for (const rawLine of message.split("\n")) {
    let line = rawLine.replace(/\r$/, "");
    if (fence !== undefined) {
      const { indentation, rest } = indent(line);
      if (
        indentation <= 3 && rest.startsWith(fence) &&
        [...rest.slice(fence.length).trim()].every((c) => c === fence![0])
      ) {
        fence = undefined;
      }
      continue;
    }
    while (/^ {0,3}>/.test(line)) line = line.replace(/^ {0,3}> ?/, "");
    const { indentation, rest } = indent(line);
    const blank = rest.trim() === "";
    if (inIndentedCode) {
      if (indentation >= 4 || blank) continue;
      inIndentedCode = false;
    }
    if (blank) {
      flush();
      continue;
    }
    if (para.length === 0 && indentation >= 4 && !seenListItem) {
      inIndentedCode = true;
      continue;
    }
    const opening = /^(`{3,}|~{3,})/.exec(rest);
    if (opening && !(opening[1][0] === "`" && rest.slice(opening[1].length).includes("`"))) {
      flush();
      fence = opening[1];
      continue;
    }
    if (/^([-+*]|\d{1,9}[.)])( |$)/.test(rest)) seenListItem = true;
    para.push(rest);
  }
  flush();
  return out;
}

function indent(line: string): { indentation: number; rest: string } {
  let columns = 0;
  let i = 0;
  for (; i < line.length && (line[i] === " " || line[i] === "\t"); i++) {
    columns = line[i] === "\t" ? columns + 4 - (columns % 4) : columns + 1;
  }
  return { indentation: columns, rest: line.slice(i) };
}

interface TextNode {
  text: string;
  start: number;
  end: number;
}

/** `ParseInlines` + `MergeInlineText`: the text runs of one paragraph; anything else separates them. */
function inlineTexts(raw: string): string[] {
  const nodes: (TextNode | null)[] = [];
  const text = (t: string, start: number, end: number) => nodes.push({ text: t, start, end });
  let pos = 0;
  while (pos < raw.length) {
    const c = raw[pos];
    if (c === "\n") {
      nodes.push(null); // a line break
      pos++;
    } else if (c === "\\") {
      if (pos + 1 < raw.length && isEscapable(raw[pos + 1])) {
        text(raw[pos + 1], pos + 1, pos + 2);
        pos += 2;
      } else {
        text("\\", pos, pos + 1);
        pos++;
      }
    } else if (c === "`") {
      pos = backticks(raw, pos, nodes);
    } else if (c === "&") {
      const semicolon = raw.indexOf(";", pos + 1);
      const decoded = semicolon < 0 ? "" : numericReference(raw.slice(pos + 1, semicolon));
      if (decoded) {
        text(decoded, pos, pos + decoded.length);
        pos = semicolon + 1;
      } else {
        text("&", pos, pos + 1);
        pos++;
      }
    } else if (c === ":" && emojiAt(raw, pos)) {
      nodes.push(null);
      pos += emojiAt(raw, pos);
    } else {
      const next = raw.slice(pos + 1).search(/[\n\\`&:]/);
      const end = next < 0 ? raw.length : pos + 1 + next;
      text(raw.slice(pos, end), pos, end);
      pos = end;
    }
  }
  const merged: string[] = [];
  let run: TextNode | undefined;
  for (const node of nodes) {
    if (node && run && run.end === node.start) {
      run = { text: run.text + node.text, start: run.start, end: node.end };
      continue;
    }
    if (run) merged.push(run.text);
    run = node ?? undefined;
  }
  if (run) merged.push(run.text);
  return merged;
}

/** `parseBackticks`: a code span up to the next run of exactly as many backticks, else literal backticks. */
function backticks(raw: string, pos: number, nodes: (TextNode | null)[]): number {
  let count = 1;
  while (raw[pos + count] === "`") count++;
  const opening = "`".repeat(count);
  let search = pos + count;
  while (search < raw.length) {
    const at = raw.indexOf(opening, search);
    if (at < 0) break;
    if (raw[at + count] === "`") {
      search = at + count;
      while (raw[search] === "`") search++;
      continue;
    }
    nodes.push(null); // a code span
    return at + count;
  }
  nodes.push({ text: opening, start: pos, end: pos + count });
  return pos + count;
}

/** `parseEmoji`: the length of `:name:` at `pos`, or 0. Only after a non-word character (from the 2nd on). */
function emojiAt(raw: string, pos: number): number {
  if (pos > 1 && /[A-Za-z0-9_]/.test(raw[pos - 1])) return 0;
  const match = /^:([a-z0-9_\-+]+):(?![A-Za-z0-9_])/.exec(raw.slice(pos));
  return match ? match[0].length : 0;
}

function isEscapable(c: string): boolean {
  return /^[!-/:-@[-`{-~]$/.test(c);
}

/** `CharacterReference` for `#decimal;` and `#xhex;`; "" when not one (named references are not decoded). */
function numericReference(ref: string): string {
  const m = /^#(?:([0-9]{1,8})|[xX]([0-9a-fA-F]{1,8}))$/.exec(ref);
  if (!m) return "";
  const code = m[1] !== undefined ? parseInt(m[1], 10) : parseInt(m[2], 16);
  if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
  return String.fromCodePoint(code);
}
