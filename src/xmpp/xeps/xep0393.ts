/**
 * XEP-0393 message styling in from XMPP: a body parsed as styling (`*strong*`, `_emphasis_`, `~strike~`,
 * `` `pre` ``, ```` ``` ```` blocks, `>` quotes) and written as the Mattermost Markdown the core carries.
 *
 * Everything that is not styling is escaped where Mattermost's Markdown would read it as something else (a `#`
 * heading, a `1.` list, a `|` table, a `*` or `_` that is no styling, an indented code block), so that it shows as
 * the sender typed it: with a backslash where Mattermost's renderer (a fork of marked) takes one, else as a
 * character reference (`&lt;`, `&#61;`). URLs stay verbatim: Mattermost links them before it reads escapes. The
 * way out is `markdownToStyling` (src/xmpp/markdown.ts).
 *
 * @module
 */

/** A span of one line (XEP-0393 §5.2). */
export type Span =
  | { kind: "plain"; text: string }
  | { kind: "pre"; text: string }
  | { kind: "strong" | "emphasis" | "strike"; children: Span[] };

/** A block of a body (XEP-0393 §5.1). */
export type Block =
  | { kind: "line"; spans: Span[] }
  | { kind: "pre"; info: string; lines: string[]; closed: boolean }
  | { kind: "quote"; blocks: Block[] };

const DIRECTIVES: Record<string, "strong" | "emphasis" | "strike" | "pre"> = {
  "*": "strong",
  "_": "emphasis",
  "~": "strike",
  "`": "pre",
};

/**
 * Parses a body into styling blocks. With `unstyled` (the sender's `<unstyled/>` hint) every line is plain.
 *
 * @example
 * ```ts
 * parseStyling("> *hi*"); // [{ kind: "quote", blocks: [{ kind: "line", spans: [{ kind: "strong", … }] }] }]
 * ```
 */
export function parseStyling(text: string, unstyled = false): Block[] {
  const lines = text.split("\n");
  if (unstyled) return lines.map((line) => ({ kind: "line", spans: [{ kind: "plain", text: line }] }));
  return parseBlocks(lines);
}

function parseBlocks(lines: string[]): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.startsWith("```")) {
      // A preformatted block runs to a line of just three backticks, or to the end of its parent (§5.1.2).
      let end = i + 1;
      while (end < lines.length && lines[end].trimEnd() !== "```") end++;
      blocks.push({
        kind: "pre",
        info: line.slice(3),
        lines: lines.slice(i + 1, end),
        closed: end < lines.length,
      });
      i = end + 1;
    } else if (line.startsWith(">")) {
      let end = i;
      while (end < lines.length && lines[end].startsWith(">")) end++;
      // One space after the `>` is the directive's; the rest is the quoted text (§5.1.3).
      const quoted = lines.slice(i, end).map((l) => l.slice(l.startsWith("> ") ? 2 : 1));
      blocks.push({ kind: "quote", blocks: parseBlocks(quoted) });
      i = end;
    } else {
      blocks.push({ kind: "line", spans: parseSpans(line) });
      i++;
    }
  }
  return blocks;
}

/**
 * The spans of one line (§5.2): an opening directive at the line's start, after whitespace or right after a
 * different opening directive, followed by non-whitespace; closed by the first same directive after
 * non-whitespace, with something between.
 */
export function parseSpans(text: string, parent?: string): Span[] {
  const spans: Span[] = [];
  let plain = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const kind = DIRECTIVES[c];
    const opens = kind !== undefined && (i === 0 ? c !== parent : /\s/.test(text[i - 1])) &&
      i + 1 < text.length && !/\s/.test(text[i + 1]);
    let close = -1;
    if (opens) {
      for (let k = i + 2; k < text.length; k++) {
        if (text[k] === c && !/\s/.test(text[k - 1])) {
          close = k;
          break;
        }
      }
    }
    if (close < 0) {
      plain += c;
      i++;
      continue;
    }
    if (plain) spans.push({ kind: "plain", text: plain });
    plain = "";
    const inner = text.slice(i + 1, close);
    spans.push(
      kind === "pre"
        ? { kind: "pre", text: inner }
        : { kind: kind as "strong" | "emphasis" | "strike", children: parseSpans(inner, c) },
    );
    i = close + 1;
  }
  if (plain) spans.push({ kind: "plain", text: plain });
  return spans;
}

/**
 * The Mattermost Markdown that shows an XMPP body as its sender meant it: styling becomes Markdown, the rest is
 * escaped so that it reads as typed.
 *
 * @example
 * ```ts
 * stylingToMarkdown("*bold* ~gone~ _it_");  // "**bold** ~~gone~~ _it_"
 * stylingToMarkdown("1. not a list");       // "1\\. not a list"
 * ```
 */
export function stylingToMarkdown(text: string, opts: { unstyled?: boolean } = {}): string {
  return renderBlocks(parseStyling(text, opts.unstyled), pipesNeedEscaping(text)).join("\n");
}

/** A line Markdown could take as a table's delimiter row (`--|--`, `|:-:|`): only then are pipes escaped. */
function pipesNeedEscaping(text: string): boolean {
  return /^[ \t]*(?=[^\n]*\|)(?=[^\n]*-)[-|: \t]+$/m.test(text);
}

function renderBlocks(blocks: Block[], pipes: boolean): string[] {
  const out: string[] = [];
  blocks.forEach((block, n) => {
    if (block.kind === "line") {
      out.push(renderLine(block.spans, pipes));
    } else if (block.kind === "pre") {
      // Backticks (tildes when the info has a backtick, which a backtick fence's may not), more than start any line
      // inside, so that none of those closes it.
      const mark = block.info.includes("`") ? "~" : "`";
      const runs = block.lines.map((l) => new RegExp(`^\\s*(\\${mark}*)`).exec(l)![1].length);
      const fence = mark.repeat(Math.max(2, ...runs) + 1);
      // Escaped: backslashes and references, which an info string reads, and a first character that would lengthen
      // the fence.
      const info = block.info.replace(/[\\&]/g, "\\$&").replace(/^[`~]/, "\\$&");
      // Unclosed, it runs to the end of the message or quote, in Markdown as in XEP-0393.
      out.push(fence + info, ...block.lines, ...(block.closed ? [fence] : []));
    } else {
      const inner = renderBlocks(block.blocks, pipes);
      out.push(...inner.map((l) => (l === "" ? ">" : `> ${l}`)));
      // Markdown would take a following line as more of the quote (a lazy continuation): a blank line ends it.
      const next = blocks[n + 1];
      if (next?.kind === "line" && !isBlank(next)) out.push("");
    }
  });
  return out;
}

function isBlank(block: { spans: Span[] }): boolean {
  return block.spans.every((s) => s.kind === "plain" && s.text.trim() === "");
}

/** One line of spans as Markdown, with what would start a Markdown block at its beginning escaped. */
function renderLine(spans: Span[], pipes: boolean): string {
  let line = "";
  spans.forEach((span, n) => {
    const after = firstChar(spans[n + 1]);
    line += renderSpan(span, line.at(-1) ?? "", after, pipes);
  });
  return escapeLineStart(line);
}

function firstChar(span: Span | undefined): string {
  if (!span) return "";
  if (span.kind === "plain") return span.text[0] ?? "";
  return span.kind === "pre" ? "`" : DIRECTIVE_OF[span.kind];
}

const DIRECTIVE_OF = { strong: "*", emphasis: "_", strike: "~" } as const;

function renderSpan(span: Span, before: string, after: string, pipes: boolean): string {
  switch (span.kind) {
    case "plain":
      return escapeInline(span.text, before, after, pipes);
    case "pre":
      return codeSpan(span.text);
    case "strong":
    case "strike":
    case "emphasis": {
      // `_` cannot close emphasis before a letter (`_it_s`), `*` can.
      const mark = span.kind === "strong"
        ? "**"
        : span.kind === "strike"
        ? "~~"
        : isWordChar(after)
        ? "*"
        : "_";
      const inner = renderChildren(span.children, mark, pipes);
      if (delimits(before, inner, after)) return mark + inner + mark;
      // Markdown cannot style this (`_*_x`: emphasis of punctuation, glued to a word): it shows as typed instead.
      const typed = `\\${DIRECTIVE_OF[span.kind]}`;
      return typed + inner + typed;
    }
  }
}

/**
 * Whether Markdown delimiters around `inner` open and close (CommonMark's flanking rules): one next to
 * punctuation inside must have whitespace, punctuation or nothing outside.
 */
function delimits(before: string, inner: string, after: string): boolean {
  const free = (c: string) => c === "" || /[\s\p{P}\p{S}]/u.test(c);
  const punct = (c: string) => /[\p{P}\p{S}]/u.test(c);
  const chars = [...inner];
  return (!punct(chars[0]) || free(before)) && (!punct(chars.at(-1)!) || free(after));
}

/** A Markdown code span of `text`: delimited by more backticks than any run inside, padded when it touches one. */
function codeSpan(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const delimiter = "`".repeat(longest + 1);
  const pad = text.startsWith("`") || text.endsWith("`") || /^ .* $/.test(text) ? " " : "";
  return delimiter + pad + text + pad + delimiter;
}

function renderChildren(children: Span[], mark: string, pipes: boolean): string {
  let out = "";
  children.forEach((child, n) => {
    const before = out.at(-1) ?? mark.at(-1)!;
    out += renderSpan(child, before, firstChar(children[n + 1]) || mark[0], pipes);
  });
  return out;
}

/**
 * Links as Mattermost's Markdown finds them, kept verbatim: `<scheme://…>` (a CommonMark autolink), and bare
 * `http(s)://` and `www.` links up to whitespace or `<`. A backslash in there would end up in the link, and the
 * punctuation Mattermost leaves out of a bare link at its end opens nothing.
 */
const URL = /<(?:https?|ftp|mailto|xmpp):[^\s<>]*>|(?:(?:https?|ftp):\/\/|www\.)[^\s<]*/giu;

/** Escapes what Mattermost's Markdown would take as markup in plain text; URLs are left as they are. */
function escapeInline(text: string, before: string, after: string, pipes: boolean): string {
  let out = "";
  let last = 0;
  for (const m of text.matchAll(URL)) {
    out += escapeChars(text.slice(last, m.index), out.at(-1) ?? before, m[0][0], pipes) + m[0];
    last = m.index + m[0].length;
  }
  return out + escapeChars(text.slice(last), out.at(-1) ?? before, after, pipes);
}

function escapeChars(text: string, before: string, after: string, pipes: boolean): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const prev = i === 0 ? before : text[i - 1];
    const next = i + 1 < text.length ? text[i + 1] : after;
    switch (c) {
      case "*":
      case "`":
      case "~":
      case "[":
        out += `\\${c}`;
        break;
      case "\\":
        // Before a letter or digit a backslash is just one; before punctuation it escapes, at a line's end it breaks.
        out += next === "" || /[\s!-/:-@[-`{-~]/.test(next) ? "\\\\" : c;
        break;
      case "_":
        // Inside a word (`snake_case`) an underscore is never emphasis; elsewhere it may be.
        out += isWordChar(prev) && isWordChar(next) ? c : "\\_";
        break;
      case "&":
        // Mattermost's renderer escapes no `&` or `<` with a backslash: as references they are text in any renderer.
        out += /^&#?[A-Za-z0-9]+;/.test(text.slice(i) + after) ? "&amp;" : c;
        break;
      case "<":
        out += /[A-Za-z/!?]/.test(next) ? "&lt;" : c;
        break;
      case "|":
        out += pipes ? "\\|" : c;
        break;
      default:
        out += c;
    }
  }
  return out;
}

function isWordChar(c: string): boolean {
  return c !== "" && /[\p{L}\p{N}]/u.test(c);
}

/**
 * Escapes what would make a Markdown block of the line: a quote `>` (only an unstyled line has one), a heading `#`,
 * a list marker (`-`, `+`, `1.`), a setext underline or rule (`---`, `===`), a table's delimiter row (`-:`), and
 * indentation (kept as no-break spaces, which start no code block).
 */
function escapeLineStart(line: string): string {
  const indent = /^[ \t]*/.exec(line)![0];
  let rest = line.slice(indent.length);
  if (rest === "") return line;
  const block = rest.startsWith(">") || /^#{1,6}(?:[ \t]|$)/.test(rest) || /^[-+](?:[ \t]|$)/.test(rest) ||
    /^(?:=+|-+)[ \t]*$/.test(rest) || /^\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/.test(rest);
  // Mattermost's renderer escapes neither `=` nor `:` with a backslash: those are written as references.
  const escaped: Record<string, string> = { "=": "&#61;", ":": "&#58;" };
  if (block && !rest.startsWith("\\")) rest = (escaped[rest[0]] ?? `\\${rest[0]}`) + rest.slice(1);
  else rest = rest.replace(/^(\d{1,9})([.)])(?=[ \t]|$)/, "$1\\$2");
  return indent.replaceAll(" ", "\u00a0").replaceAll("\t", "\u00a0".repeat(4)) + rest;
}
