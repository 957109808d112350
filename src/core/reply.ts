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
 * The quote lines `dm` is shown after where its parent cannot be pointed at (a reply whose parent never reached the
 * target: no {@link DirectionalMessage.parent}), or undefined: it answers nothing, its parent is there, the source
 * gave no text of it, or it is an action (a quote in front would no longer read as one).
 */
export function standaloneQuote(dm: DirectionalMessage): string | undefined {
  const reply = dm.message.replyTo;
  return reply && !dm.parent && !dm.message.action ? quoteLines(reply) : undefined;
}
