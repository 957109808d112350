/**
 * Helpers for copying files between networks, shared by the connectors: a size cap applied while streaming, sizes
 * for people, and the notice that stands in for a file that could not be copied.
 *
 * @module
 */
import { FileUnavailable } from "./bridge.ts";
import type { Attachment } from "./events.ts";

/**
 * `body`, erroring with a {@link FileUnavailable} ("too-large") as soon as more than `maxBytes` went through, so that
 * an unbounded body is never read further than the limit.
 *
 * @example
 * ```ts
 * const capped = capStream(res.body!, 10 * 1024 * 1024);
 * ```
 */
export function capStream(body: ReadableStream<Uint8Array>, maxBytes: number): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > maxBytes) {
          controller.error(tooLarge(maxBytes));
          return;
        }
        controller.enqueue(chunk);
      },
    }),
  );
}

/** The {@link FileUnavailable} of a file over `maxBytes`. */
export function tooLarge(maxBytes: number, size?: number): FileUnavailable {
  // Rounded alike, the two sizes would read as equal.
  const shown = size !== undefined && formatBytes(size) === formatBytes(maxBytes)
    ? `${size} bytes`
    : formatBytes(size ?? 0);
  const what = size === undefined ? "it is" : `it is ${shown},`;
  return new FileUnavailable("too-large", `${what} larger than the ${formatBytes(maxBytes)} limit`);
}

/**
 * A size for people, in binary units with one decimal where it matters.
 *
 * @example
 * ```ts
 * formatBytes(1536); // "1.5 KiB"
 * ```
 */
export function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 || value >= 10
    ? Math.round(value).toString()
    : value.toFixed(1).replace(/\.0$/, "");
  return `${shown} ${units[unit]}`;
}

/**
 * The line that stands in for a file that could not be copied: its name, its link when there is one, and why.
 *
 * @example
 * ```ts
 * fileNotice({ name: "a.png", source: "x", url: "https://h/a.png" }, "it is larger than the 10 MiB limit");
 * // "📎 a.png: https://h/a.png (not copied: it is larger than the 10 MiB limit)"
 * ```
 */
export function fileNotice(attachment: Attachment, reason: string): string {
  const link = attachment.url ? `: ${attachment.url}` : "";
  return `📎 ${attachment.name}${link} (not copied: ${reason})`;
}
