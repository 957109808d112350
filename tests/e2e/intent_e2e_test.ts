/**
 * One voice per sender on XMPP: the connector builds each message's stanza once and hands it to whichever intent
 * speaks for the author (the bridge's relay occupant, an IBR ghost, a component puppet), so that whatever it adds
 * to the stanza reaches the room from all three alike.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { BridgeError } from "../../src/core/errors.ts";
import { ComponentPuppets } from "../../src/xmpp/intents/puppets.ts";
import { buildGroupchat } from "../../src/xmpp/protocol/stanza.ts";
import { componentEnv, startWorld } from "../helpers/harness.ts";
import { startProsody } from "../helpers/prosody.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS_MARK = "urn:mmxmpp:test:mark";

Deno.test(
  "an element the connector adds reaches the room from the relay, an IBR ghost and a component puppet alike",
  opts,
  async () => {
    const w = await startWorld();
    const voices: Array<{ mode: string; env: Record<string, string>; nick: string }> = [
      { mode: "relay", env: {}, nick: "bridge" },
      { mode: "ibr", env: { BRIDGE_GHOST_MODE: "ibr" }, nick: "bob" },
      {
        mode: "component",
        env: {
          ...componentEnv(w.prosody),
        },
        nick: "bob",
      },
    ];
    try {
      for (const voice of voices) {
        const bridge = await w.startBridge(voice.env);
        bridge.xmpp.outgoing.push((stanza, dm) =>
          stanza.append(xml("mark", { xmlns: NS_MARK, voice: voice.mode, author: dm.message.sender.name }))
        );
        const text = `spoken in ${voice.mode} mode`;
        await w.mm.postAs(w.bob.id, w.channel.id, text);
        const [msg] = await w.alice.waitForMessages(
          w.room,
          (m) => m.body?.endsWith(text) ?? false,
          1,
          15_000,
        );
        assert.equal(msg.nick, voice.nick, `${voice.mode}: spoken by the wrong occupant`);
        const mark = msg.stanza.getChild("mark", NS_MARK);
        assert.ok(mark, `${voice.mode}: the connector's element did not reach the room:\n${msg.stanza}`);
        assert.equal(mark.attrs.voice, voice.mode);
        assert.equal(mark.attrs.author, "bob");
        assert.ok(msg.originId, `${voice.mode}: no origin-id`);
        assert.equal(msg.id, msg.originId);
        await bridge.stop();
      }
    } finally {
      await w.stop();
    }
  },
);

Deno.test("sending ahead resolves once written; the room's answer comes apart, a refusal included", async () => {
  const prosody = await startProsody();
  const puppets = new ComponentPuppets({
    service: prosody.componentService,
    domain: prosody.componentDomain,
    secret: prosody.componentSecret,
    reflectionTimeoutMs: 5_000,
  });
  await prosody.register("alice", "alice-password");
  const alice = await connectXmppUser(prosody, "alice", "alice-password", { resource: "test" });
  const room = `ahead@${prosody.mucDomain}`;
  try {
    await alice.joinRoom(room, "alice");
    await puppets.start();
    const bob = await puppets.intentFor({ id: "mm-user-bob", name: "bob" });
    await bob.ensureJoined(room);
    // Three written back to back before any answer is awaited: each is confirmed by its own reflection.
    const ids = ["ahead-1", "ahead-2", "ahead-3"];
    const written = [];
    for (const id of ids) written.push(await bob.sendAhead(room, buildGroupchat(room, id, id), id));
    const reflected = await Promise.all(written.map((w) => w.reflected));
    const seen = await alice.waitForMessages(room, (m) => m.nick === "bob", 3);
    assert.deepEqual(seen.map((m) => m.body), ids);
    assert.deepEqual(reflected.map((r) => r.stanzaId), seen.map((m) => m.stanzaId));

    // Without voice the write still succeeds; only the reflection, the room's answer, fails.
    await alice.iq(
      xml(
        "iq",
        { type: "set", to: room },
        xml(
          "query",
          { xmlns: "http://jabber.org/protocol/muc#admin" },
          xml("item", { nick: "bob", role: "visitor" }),
        ),
      ),
    );
    const refused = await bob.sendAhead(room, buildGroupchat(room, "muted", "ahead-4"), "ahead-4");
    await assert.rejects(refused.reflected, (err: BridgeError) => {
      assert.ok(err instanceof BridgeError && err.transient);
      assert.match(err.message, /refused a message: forbidden/);
      return true;
    });
  } finally {
    await puppets.stop();
    await alice.stop();
    await prosody.stop();
  }
});
