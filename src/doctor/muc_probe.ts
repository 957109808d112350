/**
 * A MUC round trip for the doctor: join a room, send one message, wait for the room to reflect it, leave. By
 * default the room is a throwaway one, created for the probe and destroyed after it, so that no test message ever
 * lands in a bridged room (and from there in Mattermost).
 *
 * @module
 */
import { xml } from "@xmpp/client-core";
import type { Element, XmppClient } from "../xmpp/session/client.ts";
import { discoInfo, discoItems } from "../xmpp/protocol/disco.ts";
import { MucRooms } from "../xmpp/muc/rooms.ts";
import { buildGroupchat, errorCondition } from "../xmpp/protocol/stanza.ts";
import { errorMessage } from "../core/errors.ts";
import { deadline } from "../core/deadline.ts";
import { StepFailure } from "./report.ts";
import { NS_DATA, NS_MUC_OWNER, NS_MUC_ROOMCONFIG, NS_MUC_USER, NS_SID } from "../xmpp/protocol/ns.ts";

/** The room a live probe uses. */
export interface ProbeRoom {
  jid: string;
  /** True for a room named at random for this probe: it is created, and destroyed afterwards. */
  throwaway: boolean;
}

/**
 * The room for a probe: `explicit` (from `--test-room`) when given, else a new room `mmxmpp-doctor-RANDOM` on
 * `service` (the MUC service of the first mapped room), or on the MUC service the server lists in disco#items.
 *
 * @example
 * ```ts
 * const room = await probeRoom(client, "example.org", undefined, "conference.example.org");
 * room.jid; // "mmxmpp-doctor-1a2b3c4d@conference.example.org"
 * ```
 */
export async function probeRoom(
  client: XmppClient,
  domain: string,
  explicit: string | undefined,
  service: string | undefined,
): Promise<ProbeRoom> {
  if (explicit) return { jid: explicit, throwaway: false };
  service ??= await findMucService(client, domain);
  return { jid: `mmxmpp-doctor-${crypto.randomUUID().slice(0, 8)}@${service}`, throwaway: true };
}

/**
 * How a step names the room it used, e.g. "the throwaway room mmxmpp-doctor-1a2b3c4d@conference.example.org
 * (destroyed after the test)" or "lobby@conference.example.org (mapped: the message was bridged)".
 */
export function roomLabel(room: ProbeRoom, s: { testRoomMapped: boolean }, destroyed?: boolean): string {
  if (!room.throwaway) {
    return s.testRoomMapped
      ? `${room.jid} (--test-room, mapped: the message was bridged to Mattermost)`
      : `${room.jid} (--test-room)`;
  }
  const end = destroyed === true
    ? "destroyed after the test"
    : destroyed === false
    ? "the server refused to destroy it; left, it goes when empty"
    : "left after the test";
  return `the throwaway room ${room.jid} (${end})`;
}

/** The first item of `domain`'s disco#items whose identity is conference/text. */
async function findMucService(client: XmppClient, domain: string): Promise<string> {
  const fix =
    "give --test-room room@service, a room that is not bridged (or map a room in BRIDGE_MAPPINGS, " +
    "whose service the doctor then uses for a throwaway room)";
  const items = await discoItems(client, domain).catch((err) => {
    throw new StepFailure(
      `disco#items on ${domain} failed (${errorMessage(err)}): no MUC service found`,
      fix,
    );
  });
  for (const item of items) {
    if (item.node) continue;
    const info = await discoInfo(client, item.jid).catch(() => undefined);
    if (info?.identities.some((i) => i.category === "conference" && i.type === "text")) return item.jid;
  }
  throw new StepFailure(`${domain} lists no MUC service in disco#items`, fix);
}

/** What a round trip measured. */
export interface RoundTrip {
  /** The nick we got (a variant of the one asked for when taken). */
  nick: string;
  joinMs: number;
  /** From sending the message to receiving its reflection. */
  roundTripMs: number;
  /** For a throwaway room: whether it was destroyed afterwards (false: left, the server removes it when empty). */
  destroyed?: boolean;
}

/**
 * Joins `probe.jid` as `nick` (without history), sends `text` and resolves when the room reflects it; always
 * leaves. A throwaway room that the join created is configured as a hidden, temporary instant room and destroyed
 * at the end instead. Throws a {@link StepFailure} saying which part failed.
 *
 * @example
 * ```ts
 * const room = { jid: "lobby@conference.example.org", throwaway: false };
 * const { roundTripMs } = await mucRoundTrip(client, room, "doctor", "test");
 * ```
 */
export async function mucRoundTrip(
  client: XmppClient,
  probe: ProbeRoom,
  nick: string,
  text: string,
  timeoutMs = 10_000,
): Promise<RoundTrip> {
  const room = probe.jid;
  const rooms = new MucRooms((el) => client.send(el), undefined, timeoutMs);
  const id = `mmxmpp-doctor-${crypto.randomUUID()}`;
  let reflected: (at: number) => void;
  let bounced: (err: Error) => void;
  const reflection = new Promise<number>((resolve, reject) => {
    reflected = resolve;
    bounced = reject;
  });
  let created = false;
  const onStanza = (stanza: Element) => {
    if (stanza.is("presence")) {
      // Status 201 on our own presence: the join created the room (XEP-0045 §10.1.1).
      const codes = stanza.getChild("x", NS_MUC_USER)?.getChildren("status").map((el: Element) =>
        el.attrs.code
      );
      if (String(stanza.attrs.from ?? "").split("/")[0].toLowerCase() === room && codes?.includes("201")) {
        created = true;
      }
      rooms.handlePresence(stanza);
    }
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
      const why = errorMessage(err).replace(/^cannot join [^:]+: /, "");
      throw new StepFailure(
        `cannot join ${probe.throwaway ? "the throwaway room " : ""}${room}: ${why}`,
        joinFix(probe, why),
      );
    });
    joined = true;
    const joinMs = performance.now() - t0;
    if (created && probe.throwaway) await configureThrowaway(client, room, timeoutMs);
    const sentAt = performance.now();
    await client.send(buildGroupchat(room, text, id));
    const at = await deadline(
      reflection,
      timeoutMs,
      () => new StepFailure(`${room} did not reflect the message within ${timeoutMs / 1000} s`),
    );
    const destroyed = created && probe.throwaway ? await destroy(client, room, timeoutMs) : undefined;
    if (destroyed) joined = false; // nothing left to leave
    return { nick: got, joinMs, roundTripMs: at - sentAt, destroyed };
  } finally {
    client.removeListener("stanza", onStanza as never);
    if (joined) await rooms.leave(room).catch(() => {});
  }
}

function joinFix(probe: ProbeRoom, why: string): string {
  const service = probe.jid.split("@")[1];
  if (!probe.throwaway) {
    return "check that the room JID is right and that the room lets this account in (members-only rooms need " +
      "it as a member)";
  }
  return /not-allowed|forbidden/.test(why)
    ? `${service} does not let this account create rooms: allow it (Prosody: restrict_room_creation), or give ` +
      "--test-room an existing room it may join that is not bridged"
    : `check the MUC service ${service}, or give --test-room an existing room that is not bridged`;
}

/**
 * Unlocks a room the probe created as an instant room that is neither listed nor kept (XEP-0045 §10.1.2), so that
 * nobody finds it in the room list and the server drops it if destroying it fails.
 */
async function configureThrowaway(client: XmppClient, room: string, timeoutMs: number): Promise<void> {
  const field = (name: string, value: string, type?: string) =>
    xml("field", { var: name, ...(type ? { type } : {}) }, xml("value", {}, value));
  await client.iqCaller.request(
    xml(
      "iq",
      { type: "set", to: room },
      xml(
        "query",
        { xmlns: NS_MUC_OWNER },
        xml(
          "x",
          { xmlns: NS_DATA, type: "submit" },
          field("FORM_TYPE", NS_MUC_ROOMCONFIG, "hidden"),
          field("muc#roomconfig_publicroom", "0"),
          field("muc#roomconfig_persistentroom", "0"),
        ),
      ),
    ),
    timeoutMs,
  ).catch((err) => {
    throw new StepFailure(`cannot configure the throwaway room ${room}: ${errorMessage(err)}`);
  });
}

/** Destroys a room the probe created (XEP-0045 §10.9); false when the server refused. */
function destroy(client: XmppClient, room: string, timeoutMs: number): Promise<boolean> {
  return client.iqCaller.request(
    xml(
      "iq",
      { type: "set", to: room },
      xml(
        "query",
        { xmlns: NS_MUC_OWNER },
        xml("destroy", {}, xml("reason", {}, "mmxmpp doctor: test finished")),
      ),
    ),
    timeoutMs,
  ).then(() => true, () => false);
}
