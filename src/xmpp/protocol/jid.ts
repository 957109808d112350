/**
 * JID checks for what admins type: room JIDs in mappings and commands.
 *
 * @module
 */
import { jid as parseJid } from "@xmpp/client-core";
import { BridgeError } from "../../core/errors.ts";

/**
 * Validates and normalises a bare room JID (`room@service`), lowercasing it as MUC services do.
 * Throws a BridgeError naming what is wrong.
 *
 * @example
 * ```ts
 * normalizeRoomJid("Team@Conference.Example.org"); // "team@conference.example.org"
 * ```
 */
export function normalizeRoomJid(ref: string): string {
  const trimmed = ref.trim();
  const problem = "is not a room JID: expected room@service, e.g. team@conference.example.org";
  if (!/^[^@/\s]+@[^@/\s]+\.?[^@/\s]*$/.test(trimmed)) throw new BridgeError(`"${trimmed}" ${problem}`);
  try {
    const parsed = parseJid(trimmed);
    if (!parsed.local || parsed.resource) throw new Error("shape");
    return parsed.toString().toLowerCase();
  } catch {
    throw new BridgeError(`"${trimmed}" ${problem}`);
  }
}
