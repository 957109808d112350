/**
 * A MUC round trip for the doctor: join a room, send one message, wait for the room to reflect it, leave.
 *
 * @module
 */
import type { Element, XmppClient } from "../xmpp/client.ts";
import { MucRooms } from "../xmpp/muc.ts";
import { buildGroupchat, errorCondition, NS_SID } from "../xmpp/stanza.ts";
import { errorMessage } from "../core/errors.ts";
import { deadline } from "../core/deadline.ts";
import { StepFailure } from "./report.ts";

/** What a round trip measured. */
export interface RoundTrip {
  /** The nick we got (a variant of the one asked for when taken). */
  nick: string;
  joinMs: number;
  /** From sending the message to receiving its reflection. */
  roundTripMs: number;
}

/**
 * Joins `room` as `nick` (without history), sends `text` and resolves when the room reflects it; always leaves.
 * Throws a {@link StepFailure} saying which part failed.
 *
 * @example
 * ```ts
 * const { roundTripMs } = await mucRoundTrip(client, "lobby@conference.example.org", "doctor", "test");
 * ```
 */
export async function mucRoundTrip(
  client: XmppClient,
  room: string,
  nick: string,
  text: string,
  timeoutMs = 10_000,
): Promise<RoundTrip> {
  const rooms = new MucRooms((el) => client.send(el), undefined, timeoutMs);
  const id = `mmxmpp-doctor-${crypto.randomUUID()}`;
  let reflected: (at: number) => void;
  let bounced: (err: Error) => void;
  const reflection = new Promise<number>((resolve, reject) => {
    reflected = resolve;
    bounced = reject;
  });
  const onStanza = (stanza: Element) => {
    if (stanza.is("presence")) rooms.handlePresence(stanza);
    if (!stanza.is("message") || String(stanza.attrs.from ?? "").split("/")[0].toLowerCase() !== room) return;
    const originId = stanza.getChild("origin-id", NS_SID)?.attrs.id;
    if (stanza.attrs.id !== id && originId !== id) return;
    if (stanza.attrs.type === "error") {
      bounced(new StepFailure(`the room refused the message (${errorCondition(stanza) ?? "error"})`));
    } else reflected(performance.now());
  };
  client.on("stanza", onStanza);
  let joined = false;
  try {
    const t0 = performance.now();
    const got = await rooms.join(room, nick).catch((err) => {
      throw new StepFailure(
        `cannot join ${room}: ${errorMessage(err).replace(/^cannot join [^:]+: /, "")}`,
        "check that the room JID is right and that the room lets this account in (members-only rooms need it " +
          "as a member)",
      );
    });
    joined = true;
    const joinMs = performance.now() - t0;
    const sentAt = performance.now();
    await client.send(buildGroupchat(room, text, id));
    const at = await deadline(
      reflection,
      timeoutMs,
      () => new StepFailure(`${room} did not reflect the message within ${timeoutMs / 1000} s`),
    );
    return { nick: got, joinMs, roundTripMs: at - sentAt };
  } finally {
    client.removeListener("stanza", onStanza as never);
    if (joined) await rooms.leave(room).catch(() => {});
  }
}
