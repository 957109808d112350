/**
 * The format converters: XEP-0393 styling in to Mattermost Markdown (xep0393.ts), Mattermost Markdown out to
 * styling (markdown.ts). Table-driven cases for each direction, and property tests that a message converted to the
 * other side and back keeps its text. What Mattermost shows is checked with `marked`'s lexer, the parser
 * Mattermost's renderer is a fork of.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Lexer, type Token, type Tokens } from "marked";
import { parseSpans, stylingToMarkdown } from "../../src/xmpp/xeps/xep0393.ts";
import { markdownToStyling, styledByLexer } from "../../src/xmpp/markdown.ts";

/** [what an XMPP user typed, the Markdown the bridge posts]. */
const IN: Array<[string, string]> = [
  ["*bold* _it_ ~gone~ `code`", "**bold** _it_ ~~gone~~ `code`"],
  ["*_both_*", "**_both_**"],
  ["_it_s", "*it*s"],
  ["> quoted\n>> deeper", "> quoted\n> > deeper"],
  ["> quoted\nreply", "> quoted\n\nreply"],
  ["```py\nx = *1* # not styled\n```\nafter", "```py\nx = *1* # not styled\n```\nafter"],
  // Not meant as Markdown: escaped, so that Mattermost shows it as typed.
  ["# not a heading", "\\# not a heading"],
  ["1. not a list\n2) nor this", "1\\. not a list\n2\\) nor this"],
  ["- not a bullet\n+ nor this", "\\- not a bullet\n\\+ nor this"],
  ["a_b_c snake_case _x", "a_b_c snake_case \\_x"],
  ["2 * 3 * 4", "2 \\* 3 \\* 4"],
  ["a | b\n--|--", "a \\| b\n--\\|--"],
  ["a | b", "a | b"],
  ["title\n---", "title\n\\---"],
  ["title\n===", "title\n&#61;=="],
  // Mattermost's renderer escapes no `<`, `&`, `=` or `:` with a backslash: references instead.
  ["<b>x</b> &amp; <3 & co", "&lt;b>x&lt;/b> &amp;amp; <3 & co"],
  ["-:\n:-", "\\-:\n&#58;-"],
  ["[not](a link) ~/home", "\\[not](a link) \\~/home"],
  // A backslash before a letter is one already; before punctuation or at a line's end it is escaped.
  ["C:\\temp\\* a\\", "C:\\temp\\\\\\* a\\\\"],
  ["  two spaces\n    four", "\u00a0\u00a0two spaces\n\u00a0\u00a0\u00a0\u00a0four"],
  ["**", "\\*\\*"],
  ["a\\`b` c", "a\\\\\\`b\\` c"],
  // Emphasis Markdown cannot express (of punctuation, glued to a word) shows as typed.
  ["_*_x and *(a)*b", "\\_\\*\\_x and \\*(a)\\*b"],
  // URLs stay verbatim: Mattermost links them before it reads escapes.
  [
    "see https://example.org/a_b_*c* and www.x.org/_y_.",
    "see https://example.org/a_b_*c* and www.x.org/_y_.",
  ],
  ["*https://example.org*", "**https://example.org**"],
  ["@alice_b and bob@example.org", "@alice_b and bob@example.org"],
];

Deno.test("XMPP styling becomes Markdown, and what is not styling is escaped", () => {
  for (const [typed, md] of IN) assert.equal(stylingToMarkdown(typed), md, JSON.stringify(typed));
});

Deno.test("an <unstyled/> body is all plain text", () => {
  assert.equal(stylingToMarkdown("*not bold* > x", { unstyled: true }), "\\*not bold\\* > x");
  assert.equal(stylingToMarkdown("> not a quote", { unstyled: true }), "\\> not a quote");
});

Deno.test("XEP-0393 span rules: openers after whitespace, closers after non-whitespace, nothing empty", () => {
  assert.deepEqual(parseSpans("a*b*"), [{ kind: "plain", text: "a*b*" }]);
  assert.deepEqual(parseSpans("* b*"), [{ kind: "plain", text: "* b*" }]);
  assert.deepEqual(parseSpans("*b *"), [{ kind: "plain", text: "*b *" }]);
  assert.deepEqual(parseSpans("`*a*`"), [{ kind: "pre", text: "*a*" }]);
  assert.deepEqual(parseSpans("*a _b_*"), [{
    kind: "strong",
    children: [{ kind: "plain", text: "a " }, { kind: "emphasis", children: [{ kind: "plain", text: "b" }] }],
  }]);
});

/** [what a Mattermost user posted, the body XMPP users get]. */
const OUT: Array<[string, string]> = [
  ["**bold** __bold__ _it_ *it* ~~gone~~ `code`", "*bold* *bold* _it_ _it_ ~gone~ `code`"],
  ["***both***", "_*both*_"],
  [
    "[docs](https://example.org) <https://x.org> https://y.org",
    "docs <https://example.org> <https://x.org> https://y.org",
  ],
  ["![logo](https://x.org/l.png)", "logo <https://x.org/l.png>"],
  ["mail bob@example.org", "mail bob@example.org"],
  ["> quote\n> more\n\nafter", "> quote\n> more\n\nafter"],
  ["```js\nlet a = 1;\n```", "```js\nlet a = 1;\n```"],
  ["    indented code", "```\nindented code\n```"],
  ["# Title\ntext\n\n## Sub **bold**", "*Title*\ntext\n\nSub *bold*"],
  ["| a | b |\n|---|---|\n| 1 | *2* |", "a | b\n1 | _2_"],
  ["- one\n- two\n  - nested\n\n3. three\n4. four", "- one\n- two\n  - nested\n\n3. three\n4. four"],
  ["- [x] done\n- [ ] todo", "- [x] done\n- [ ] todo"],
  ["a &amp; b &lt;3 &#64;all", "a & b <3 @all"],
  ["\\*not bold\\* 1\\. x", "*not bold* 1. x"],
  ["line one\nline two", "line one\nline two"],
  ["a\n\n***\n\nb", "a\n\n―――\n\nb"],
  ["``a`b``", "a`b"],
  ["[a]: https://x.org", "[a]: https://x.org"],
];

Deno.test("Mattermost Markdown becomes XMPP styling; links as text <url>, headings and tables flattened", () => {
  for (const [md, body] of OUT) assert.equal(markdownToStyling(md), body, JSON.stringify(md));
});

Deno.test("an @username that is an occupant's nick becomes the plain nick, outside code only", () => {
  const nicks = new Map([["alice", "Alice"], ["carol.d", "carol.d"]]);
  const mention = (u: string) => nicks.get(u);
  assert.equal(
    markdownToStyling("@alice, see @carol.d. and @bob `@alice`", { mention }),
    "Alice, see carol.d. and @bob `@alice`",
  );
  assert.equal(markdownToStyling("mail@alice.org **@Alice**", { mention }), "mail@alice.org *Alice*");
});

/** Characters that mean something to one side or the other, and some that mean nothing. */
const TRICKY = [..."*_~`>#|-+=.)1[]()<>&;!\\:/@ \n\taé😀"].concat([
  // A link is followed by a space: what Mattermost cuts off a link's end (an entity, punctuation) is best effort.
  "https://x.org/a_b ",
  "www.y.org ",
  "<https://z.org/c> ",
  "```",
  "&amp;",
]);
const typed = fc.array(fc.constantFrom(...TRICKY), { maxLength: 40 }).map((parts) => parts.join(""));

/** The characters a text shows, in order, whitespace aside. */
function ink(text: string): string {
  return text.replace(/\s+/g, "");
}

/** A text's character references as the characters a browser shows. */
function decode(text: string): string {
  const named: Record<string, string> = { amp: "&", lt: "<" };
  return text.replace(
    /&(amp|lt|#\d+);/g,
    (_, ref: string) => named[ref] ?? String.fromCodePoint(Number(ref.slice(1))),
  );
}

/** What Mattermost shows for Markdown `md`, as text: the lexer's text of every token, markup aside. */
function shown(md: string): string {
  const walk = (tokens: Token[]): string =>
    tokens.map((t) => {
      const g = t as Tokens.Generic;
      if (t.type === "list") {
        const list = t as Tokens.List;
        const start = typeof list.start === "number" ? list.start : 1;
        return list.items.map((i, n) => (list.ordered ? `${start + n}.` : "-") + walk(i.tokens)).join("");
      }
      if (t.type === "table") {
        const table = t as Tokens.Table;
        return [table.header, ...table.rows].flat().map((c) => walk(c.tokens)).join("");
      }
      if (t.type === "link" || t.type === "image") {
        const text = walk(g.tokens ?? []);
        const auto = [text, `http://${text}`, `mailto:${text}`].includes(g.href);
        return auto ? text : text + g.href;
      }
      if (g.tokens) return walk(g.tokens);
      if (t.type === "space" || t.type === "hr" || t.type === "def" || t.type === "br") return "";
      // Mattermost shows a character reference in text as its character.
      return t.type === "text" ? decode(g.text) : g.text ?? g.raw;
    }).join("");
  return ink(walk(Lexer.lex(md, { gfm: true })).replace(/\u00a0/g, ""));
}

Deno.test("property: an XMPP message shows on Mattermost with every character as typed", () => {
  fc.assert(
    fc.property(typed, (text) => {
      // Whatever Mattermost's Markdown reads into it, the text it shows is the typed text without the styling.
      const md = stylingToMarkdown(text, { unstyled: true });
      // (`<https://…>` is a link on both sides: Mattermost shows it without the brackets.)
      const expected = ink(text.replace(/<((?:https?|ftp|mailto|xmpp):[^\s<>]*)>/g, "$1")).replace(
        /\u00a0/g,
        "",
      );
      assert.equal(shown(md), expected, JSON.stringify(md));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("property: XMPP -> Mattermost -> XMPP gives back the typed text", () => {
  fc.assert(
    fc.property(typed, (text) => {
      const back = markdownToStyling(stylingToMarkdown(text));
      // A quoted line with nothing on it carries no text, and Markdown keeps no empty quote.
      const said = (t: string) => ink(t.replace(/^[>\s]*$/gm, ""));
      assert.equal(said(back), said(text), JSON.stringify([text, stylingToMarkdown(text), back]));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("property: one line of XMPP text comes back byte for byte", () => {
  const line = typed.map((t) => t.replace(/\n|\t/g, " ").trim()).filter((t) => !/^(>|```)/.test(t));
  fc.assert(
    fc.property(line, (text) => {
      const back = markdownToStyling(stylingToMarkdown(text));
      assert.equal(back, text, JSON.stringify([text, stylingToMarkdown(text), back]));
    }),
    { numRuns: 1000 },
  );
});

/** Plain words, links, mentions and the punctuation that starts or ends Markdown constructs, run together. */
const plainish = fc.array(
  fc.constantFrom(
    ..."abcxyzABC0123456789é😀 ,;?'\"%$@#/.:!-_*~`[]()<>&|\\=+".split(""),
    ...[
      "  ",
      "www.example.org",
      "http://x.org/a",
      "a@b.org",
      "@bob",
      "@bob.",
      "@Bob_",
      "1. ",
      "1) ",
      "12. ",
      "- ",
      "# ",
    ],
    ...["--", "---", "...", "://", "!!", "#1", "\n"],
  ),
  { minLength: 1, maxLength: 12 },
).map((parts) => parts.join(""));

Deno.test("property: the plain-line shortcut styles as the Markdown lexer does", () => {
  const mention = (u: string) => (u === "bob" ? "Bob (xmpp)" : undefined);
  let shortcut = 0;
  fc.assert(
    fc.property(plainish, (md) => {
      for (const opts of [{}, { mention }]) {
        assert.equal(markdownToStyling(md, opts), styledByLexer(md, opts), JSON.stringify(md));
      }
      if (/^[\p{L}\p{N}]/u.test(md) && !/[\n*_~`[\]()<>&|\\=+]/.test(md)) shortcut++;
    }),
    { numRuns: 5000 },
  );
  // The property covers the shortcut's lines, not only the lexer's.
  assert.ok(shortcut > 500, `${shortcut} plain lines`);
});

/** Markdown as Mattermost users write it: words with bold, italics, strike, code, links, quotes, lists. */
const word = fc.stringMatching(/^[a-z0-9@.,!?'é😀]{1,8}$/);
const phrase = fc.array(word, { minLength: 1, maxLength: 4 }).map((w) => w.join(" "));
const inlineMd = fc.oneof(
  phrase,
  phrase.map((p) => `**${p}**`),
  phrase.map((p) => `_${p}_`),
  phrase.map((p) => `~~${p}~~`),
  phrase.map((p) => "`" + p + "`"),
  fc.tuple(phrase, word).map(([p, w]) => `[${p}](https://example.org/${w})`),
);
const lineMd = fc.tuple(
  fc.constantFrom("", "> ", "- ", "1. ", "# "),
  fc.array(inlineMd, { minLength: 1, maxLength: 4 }),
).map(([lead, parts]) => lead + parts.join(" "));
const postMd = fc.array(lineMd, { minLength: 1, maxLength: 5 }).map((lines) => lines.join("\n"));

Deno.test("property: Mattermost -> XMPP -> Mattermost shows the same text", () => {
  fc.assert(
    fc.property(postMd, (md) => {
      const styled = markdownToStyling(md);
      const back = stylingToMarkdown(styled);
      // Links come back as `text <url>`: the URL is the text's now, as it was the link's.
      assert.equal(shown(back).replace(/<|>/g, ""), shown(md), JSON.stringify([md, styled, back]));
    }),
    { numRuns: 500 },
  );
});
