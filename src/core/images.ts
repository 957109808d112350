/**
 * Pictures moved between networks (avatars): read whole into a bounded buffer, their type told from their first
 * bytes, and the SHA-1 both XMPP avatar protocols name them by.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { capStream } from "./files.ts";

/** A picture held in memory: small by construction (see {@link readImage}). */
export interface Image {
  bytes: Uint8Array;
  /** MIME type, e.g. `image/png`. */
  type: string;
}

/**
 * Reads `body` whole, erroring with a `FileUnavailable` ("too-large") as soon as it passes `maxBytes`: a picture is
 * never buffered past the cap.
 *
 * @example
 * ```ts
 * const bytes = await readAtMost(res.body!, 256 * 1024);
 * ```
 */
export async function readAtMost(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array> {
  return new Uint8Array(await new Response(capStream(body, maxBytes)).arrayBuffer());
}

/**
 * The MIME type of a PNG, JPEG, GIF or WebP picture, from its signature; undefined for anything else.
 *
 * @example
 * ```ts
 * imageType(png); // "image/png"
 * ```
 */
export function imageType(bytes: Uint8Array): string | undefined {
  const starts = (sig: number[], at = 0) => sig.every((b, i) => bytes[at + i] === b);
  if (starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (starts([0xff, 0xd8, 0xff])) return "image/jpeg";
  if (starts([0x47, 0x49, 0x46, 0x38])) return "image/gif";
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return "image/webp";
  return undefined;
}

/** The lowercase hex SHA-1 of `bytes`: the id of an avatar in XEP-0084 and XEP-0153. */
export function sha1Hex(bytes: Uint8Array): string {
  return createHash("sha1").update(bytes).digest("hex");
}

/**
 * Largest avatar moved between networks (128 KiB). A Mattermost picture is a 128×128 PNG, and an XMPP avatar
 * travels base64 in one stanza (4/3 larger), which servers cap (Prosody: 256 KiB per stanza).
 */
export const MAX_AVATAR_BYTES = 128 * 1024;
