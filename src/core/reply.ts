/**
 * Replies and threads, protocol-neutral: the quote that stands for a message's parent where the parent cannot be
 * pointed at (it never reached that network, or the client there cannot show replies).
 *
 * @module
 */
import type { ReplyTo } from "./events.ts";
import type { DirectionalMessage } from "./message.ts";

/** How much of the parent's text a quote keeps, in code points: a reply repeats it, so a long parent is cut. */
export const QUOTE_MAX_RUNES = 300;

/**
 * The lines that quote `reply`'s parent, each led by `> `, the first naming its author when known
 * (`> alice: text`), ending in a newline; undefined when the source gave no text of the parent.
 *
 * @example
 * ```ts
 * quoteLines({ targetId: "p1", quote: "lunch?\nat noon", author: "bob" }); // "> bob: lunch?\n> at noon\n"
 * ```
 */
export function quoteLines(reply: ReplyTo): string | undefined {
  const text = reply.quote?.replace(/\s+$/, "");
  if (!text) return undefined;
  const runes = [...text];
  const kept = runes.length > QUOTE_MAX_RUNES ? runes.slice(0, QUOTE_MAX_RUNES).join("") + "…" : text;
  const head = reply.author ? `${reply.author}: ` : "";
  return (head + kept).split("\n").map((line) => `> ${line}`).join("\n") + "\n";
}

/**
 * The plain text of quote lines as a client wrote them (`> ` or `>` removed from each line), and the trailing
 * newline dropped.
 *
 * @example
 * ```ts
 * unquote("> alice: hi\n> there\n"); // "alice: hi\nthere"
 * ```
 */
export function unquote(lines: string): string {
  return lines.replace(/\n$/, "").split("\n").map((line) => line.replace(/^> ?/, "")).join("\n");
}

/**
 * `dm` standing on its own where its parent cannot be pointed at: its text led by the quote of its parent. An
 * action keeps its text alone, since a quote in front would no longer read as one.
 */
export function withQuote(dm: DirectionalMessage): DirectionalMessage {
  const reply = dm.message.replyTo;
  const quote = reply && !dm.message.action ? quoteLines(reply) : undefined;
  if (!quote) return dm;
  // A blank line ends the quote in Markdown, where the next line would otherwise continue it.
  return { ...dm, message: { ...dm.message, text: quote + "\n" + dm.message.text } };
}
