import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { literal, PASSWORD, postsMatching, sharedWorlds, waitFor, type World } from "../helpers/harness.ts";
import { xep0077 } from "../../src/xmpp/xeps/xep0077.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** One Prosody for the file; each test has its own room, stand-in and store. */
const worlds = sharedWorlds("xmpp");

function command(w: World, text: string) {
  return w.mm.invokeCommand({ trigger: "xmppbridge", channelId: w.channel.id, userId: w.mm.admin.id, text });
}

Deno.test(
  "at login the bridge discovers the server's services and enables the XEPs it offers",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      const bridge = await w.startBridge();
      await waitFor(() => bridge.xmpp.capabilities() !== undefined, "capability discovery");
      const { caps, xeps } = bridge.xmpp.capabilities()!;
      assert.equal(caps.muc, "conference.localhost");
      assert.equal(caps.upload?.jid, "upload.localhost");
      assert.ok(caps.has("jabber:iq:register"));
      assert.ok(xeps.get(xep0077)?.registrationOpen, "registration is open on the test server");
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "when the bridge's nick is taken it joins as another nick and still tells itself apart",
  opts,
  async () => {
    const w = await worlds.start();
    const impostor = await connectXmppUser(w.prosody, "alice", PASSWORD, "impostor");
    try {
      await impostor.joinRoom(w.room, "bridge");
      const bridge = await w.startBridge();
      await w.mm.postAs(w.bob.id, w.channel.id, "who am I");
      const [msg] = await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> who am I", 1, 10_000);
      assert.equal(msg.nick, "bridge_");
      // A real user called "bridge" is somebody else: their words are bridged.
      await impostor.sendGroupchat(w.room, "I am the other bridge");
      const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.message === "I am the other bridge", 1);
      assert.equal(post.props?.override_username, "bridge (xmpp)");
      await bridge.manager.bus.drain();
      assert.equal(
        w.mm.posts(w.channel.id).filter((p) => p.message.includes("who am I")).length,
        1,
        "no echo",
      );
    } finally {
      await impostor.stop();
      await w.stop();
    }
  },
);

Deno.test("prefix mode puts the XMPP nick in bold for servers that forbid overrides", opts, async () => {
  const w = await worlds.start({ mattermost: { enablePostUsernameOverride: false } });
  try {
    await w.startBridge({ BRIDGE_MM_DISPLAY: "prefix", BRIDGE_XMPP_NAME_FORMAT: "{nick}@xmpp" });
    await w.alice.sendGroupchat(w.room, "plain words");
    const [post] = await postsMatching(w.mm, w.channel.id, (p) => p.message.endsWith("plain words"), 1);
    assert.equal(post.message, "**alice@xmpp** plain words");
    assert.equal(post.props?.override_username, undefined);
    assert.equal(post.props?.mmxmpp_bridged, "xmpp");
  } finally {
    await w.stop();
  }
});

Deno.test(
  "STARTTLS refuses an untrusted certificate unless XMPP_TLS_INSECURE_SKIP_VERIFY is set",
  opts,
  async () => {
    const w = await worlds.start();
    try {
      await assert.rejects(
        () => w.startBridge({ XMPP_CA_FILE: "" }),
        (err: Error) => {
          assert.match(
            err.message,
            /cannot connect to XMPP at xmpp:\/\/127\.0\.0\.1:\d+ as bridge@localhost/,
          );
          assert.match(err.message, /certificate/i);
          assert.ok(!err.message.includes(PASSWORD));
          return true;
        },
      );
      const bridge = await w.startBridge({ XMPP_CA_FILE: "", XMPP_TLS_INSECURE_SKIP_VERIFY: "true" });
      await w.mm.postAs(w.bob.id, w.channel.id, "over unverified TLS");
      await w.alice.waitForMessages(w.room, (m) => m.body === "<bob> over unverified TLS", 1, 10_000);
      assert.ok(bridge.manager.health().every((h) => h.connected));
    } finally {
      await w.stop();
    }
  },
);

Deno.test("a wrong XMPP password fails the start with a clear message and no secret", opts, async () => {
  const w = await worlds.start();
  try {
    await assert.rejects(() => w.startBridge({ XMPP_PASSWORD: "wrong-password-123" }), (err: Error) => {
      assert.match(
        err.message,
        /refused the password for bridge@localhost \(not-authorized\); check XMPP_PASSWORD/,
      );
      assert.ok(!err.message.includes("wrong-password-123"));
      return true;
    });
  } finally {
    await w.stop();
  }
});

Deno.test("map keeps the mapping and warns when the bridge is banned from the room", opts, async () => {
  // Team admin, so that the bridge may register /xmppbridge.
  const w = await worlds.start({ mapped: false, mattermost: { botTeamRole: "admin" } });
  try {
    w.mm.addMember(w.channel.id, w.mm.admin.id);
    // alice created the room, so she owns it: ban the bridge's account.
    await w.alice.iq(
      xml(
        "iq",
        { type: "set", to: w.room },
        xml(
          "query",
          { xmlns: "http://jabber.org/protocol/muc#admin" },
          xml("item", { affiliation: "outcast", jid: "bridge@localhost" }),
        ),
      ),
    );
    const bridge = await w.startBridge();
    const res = await command(w, `map ${w.room}`);
    const text = (res.body as { text: string }).text;
    assert.match(text, new RegExp(`Mapped this channel to xmpp ${literal(w.room)}\\.`));
    assert.match(
      text,
      new RegExp(`Warning: the mapping is stored, but could not join xmpp ${literal(w.room)}: .*forbidden`),
    );
    assert.equal((await bridge.manager.listMappings()).length, 1);
  } finally {
    await w.stop();
  }
});

worlds.stopAfterAll();
