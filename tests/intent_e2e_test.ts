/**
 * One voice per sender on XMPP: the connector builds each message's stanza once and hands it to whichever intent
 * speaks for the author (the bridge's relay occupant, an IBR ghost, a component puppet), so that whatever it adds
 * to the stanza reaches the room from all three alike.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { startWorld } from "./harness.ts";

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
          BRIDGE_GHOST_MODE: "component",
          XMPP_COMPONENT_JID: w.prosody.componentDomain,
          XMPP_COMPONENT_SECRET: w.prosody.componentSecret,
          XMPP_COMPONENT_SERVICE: w.prosody.componentService,
        },
        nick: "bob",
      },
    ];
    try {
      for (const voice of voices) {
        const bridge = await w.startBridge(voice.env);
        bridge.xmpp.outgoing.push((stanza, dm) =>
          stanza.append(xml("mark", { xmlns: NS_MARK, voice: voice.mode, author: dm.message.author.name }))
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
