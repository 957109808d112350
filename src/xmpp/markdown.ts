/**
 * Mattermost Markdown out to XMPP: the text the core carries, written as XEP-0393 message styling.
 *
 * The Markdown is read by `marked`'s lexer (CommonMark with GitHub's extensions, the dialect Mattermost's own
 * renderer, a fork of marked, reads), never by regular expressions. Bold, italics, strike-through, code and quotes
 * have a styling form; links become `text <url>`; headings, lists and tables flatten to readable lines. The way in
 * is `stylingToMarkdown` (src/xmpp/xeps/xep0393.ts).
 *
 * @module
 */
import { Lexer, type Token, type Tokens } from "marked";
import { parseSpans } from "./xeps/xep0393.ts";

/** How {@link markdownToStyling} renders what only the target room knows. */
export interface StylingOptions {
  /**
   * The nick an `@username` mention stands for in the room (a bridged XMPP user's occupant), or undefined to
   * leave the mention as written.
   */
  mention?: (username: string) => string | undefined;
}

/**
 * The XEP-0393 body that shows Mattermost Markdown `md` in an XMPP client.
 *
 * @example
 * ```ts
 * markdownToStyling("**bold** ~~gone~~ [docs](https://example.org)"); // "*bold* ~gone~ docs <https://example.org>"
 * ```
 */
export function markdownToStyling(md: string, opts: StylingOptions = {}): string {
  // Most messages are a line of plain words, which the lexer would hand back as one text token: its work (and
  // garbage) is then only the time it takes, on every message.
  if (PLAIN.test(md)) return mentions(md, opts);
  return styledByLexer(md, opts);
}

/**
 * One line that Markdown leaves as it is: letters, digits, single spaces between words, punctuation that no
 * Markdown construct starts with, and `_` inside a word (`snake_case`: never emphasis there; not before `www.`,
 * which would start a link). The first character is a letter or digit, and no list number; an `@` only starts a
 * word (one inside a word may make an e-mail address a link, which the lexer reads apart); no `:` (nor a URL then,
 * another link). The way through the lexer gives the same (the property test in xmpp_format_test holds the two
 * together).
 */
const PLAIN =
  /^(?![0-9]+[.)])[\p{L}\p{N}@](?:[\p{L}\p{N},;?'"%$#/.!-]|(?<=[\p{L}\p{N}])_(?=[\p{L}\p{N}])(?!www\.)| (?! )| @)*$/u;

/** {@link markdownToStyling} by `marked`'s lexer. */
export function styledByLexer(md: string, opts: StylingOptions = {}): string {
  // `breaks`: Mattermost shows every newline as a line break, as XMPP clients do.
  const tokens = Lexer.lex(md, { gfm: true, breaks: true });
  // Leading no-break spaces are how the way in keeps an XMPP line's indentation (see xep0393.ts).
  const styled = blocks(tokens, opts).replace(/\n+$/, "").replace(/^\u00a0+/gm, (s) => " ".repeat(s.length));
  // What shows nothing on Mattermost (a lone link definition) still says something: it goes as written.
  return styled.trim() === "" ? md : styled;
}

/** Block tokens in order, each followed by the line ends its source had after it. */
function blocks(tokens: Token[], opts: StylingOptions): string {
  let out = "";
  for (const token of tokens) {
    const newlines = "\n".repeat(/\n*$/.exec(token.raw)![0].length);
    out += token.type === "space" ? "\n".repeat(count(token.raw, "\n")) : block(token, opts) + newlines;
  }
  return out;
}

function count(text: string, c: string): number {
  return text.split(c).length - 1;
}

function block(token: Token, opts: StylingOptions): string {
  const t = token as Tokens.Generic;
  switch (token.type) {
    case "paragraph":
      return inline(t.tokens ?? [], opts);
    case "text":
      return t.tokens ? inline(t.tokens, opts) : decodeEntities(t.text);
    case "heading": {
      // A heading reads as a line of its own, bold when nothing in it is bold already.
      const text = inline(t.tokens ?? [], opts).trim();
      return text !== "" && !text.includes("*") ? `*${text}*` : text;
    }
    case "code": {
      const code = token as Tokens.Code;
      const text = code.text.replace(/\n$/, "");
      // A fence left open runs to the end of the message (or quote) in XEP-0393 too.
      const open = code.codeBlockStyle !== "indented" && !/\n[ \t]*(`{3,}|~{3,})[ \t]*\n*$/.test(code.raw);
      return "```" + (code.lang ?? "") + (text === "" ? "" : "\n" + text) + (open ? "" : "\n```");
    }
    case "blockquote": {
      const quoted = blocks((token as Tokens.Blockquote).tokens, opts).replace(/\n+$/, "");
      return quoted.split("\n").map((l) => (l === "" ? ">" : `> ${l}`)).join("\n");
    }
    case "list":
      return list(token as Tokens.List, opts);
    case "table":
      return table(token as Tokens.Table, opts);
    case "hr":
      return "―――";
    case "html":
      return t.raw.replace(/\n+$/, "");
    case "def":
      // A link reference definition shows nothing on Mattermost.
      return "";
    default:
      return t.raw.replace(/\n+$/, "");
  }
}

function list(token: Tokens.List, opts: StylingOptions): string {
  const start = typeof token.start === "number" ? token.start : 1;
  return token.items.map((item, n) => {
    const marker = token.ordered ? `${start + n}. ` : "- ";
    const body = blocks(item.tokens, opts).replace(/\n+$/, "");
    // Continuation lines line up under the item's text.
    return marker + body.split("\n").join("\n" + " ".repeat(marker.length));
  }).join(token.loose ? "\n\n" : "\n");
}

/** A table as one line per row, its cells separated by ` | `. */
function table(token: Tokens.Table, opts: StylingOptions): string {
  const row = (cells: Tokens.TableCell[]) => cells.map((c) => inline(c.tokens, opts)).join(" | ");
  return [row(token.header), ...token.rows.map(row)].join("\n");
}

function inline(tokens: Token[], opts: StylingOptions): string {
  return tokens.map((token) => span(token, opts)).join("");
}

function span(token: Token, opts: StylingOptions): string {
  const t = token as Tokens.Generic;
  switch (token.type) {
    case "text":
      return t.tokens ? inline(t.tokens, opts) : mentions(decodeEntities(t.text), opts);
    case "escape":
      return t.text;
    case "strong":
      return `*${inline(t.tokens ?? [], opts)}*`;
    case "em":
      return `_${inline(t.tokens ?? [], opts)}_`;
    case "del":
      return `~${inline(t.tokens ?? [], opts)}~`;
    case "codespan": {
      // Code with a backtick inside is a styling span only where XEP-0393 reads it back whole; else it goes as is.
      const pre = "`" + t.text + "`";
      const read = parseSpans(pre);
      return read.length === 1 && read[0].kind === "pre" && read[0].text === t.text ? pre : t.text;
    }
    case "br":
      return "\n";
    case "link": {
      const link = token as Tokens.Link;
      const text = inline(link.tokens, opts);
      // `<https://…>` keeps its brackets, which XMPP clients show around a link in text.
      if (link.raw.startsWith("<")) return link.raw;
      const bare = link.href.replace(/^mailto:/, "");
      return text === link.href || text === bare || `http://${text}` === link.href
        ? text
        : `${text} <${link.href}>`;
    }
    case "image": {
      const image = token as Tokens.Image;
      return image.text ? `${image.text} <${image.href}>` : image.href;
    }
    case "checkbox":
      return (token as Tokens.Checkbox).checked ? "[x] " : "[ ] ";
    default:
      return t.raw;
  }
}

/** An `@username` of Mattermost, with the punctuation the server ignores after it. */
const MENTION = /(^|[^\p{L}\p{N}_.@-])@([a-z0-9][a-z0-9._-]*)/giu;

/** Replaces each `@username` that stands for a room occupant with the occupant's nick. */
function mentions(text: string, opts: StylingOptions): string {
  const nickOf = opts.mention;
  if (!nickOf) return text;
  return text.replace(MENTION, (whole, lead: string, name: string) => {
    // `@alice.` is alice at the end of a sentence: try without trailing punctuation too.
    for (let n = name; n !== ""; n = n.slice(0, -1)) {
      const nick = nickOf(n.toLowerCase());
      if (nick !== undefined) return lead + nick + name.slice(n.length);
      if (!/[._-]$/.test(n)) break;
    }
    return whole;
  });
}

const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

/** Decodes the character references Mattermost's Markdown shows as characters (`&amp;`, `&#64;`). */
function decodeEntities(text: string): string {
  return text.replace(/&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]+);/g, (whole, ref: string) => {
    if (ref[0] !== "#") return NAMED[ref] ?? whole;
    const code = ref[1] === "x" || ref[1] === "X" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}
