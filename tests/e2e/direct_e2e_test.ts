/**
 * Direct messages against real Prosody and the Mattermost stand-in, with component puppets and Mattermost puppets:
 * an XMPP user's chat to a puppet JID arrives in the Mattermost DM between that user and the XMPP user's puppet, and
 * the answer comes back as a chat from the puppet JID; edits, reactions and files cross in 1:1 as in rooms, with the
 * 1:1 ids; a Mattermost user can write first; what cannot be delivered comes back as an XMPP error naming why.
 *
 * One Prosody serves every test of the file; each test has its own room, stand-in and state.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import mm from "@mattermost/client";
import {
  componentEnv,
  postsMatching,
  startWorld,
  userIdOf,
  waitFor,
  type World,
} from "../helpers/harness.ts";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import type { XmppUser } from "../helpers/xmpp_user.ts";
import type { Element } from "../../src/xmpp/session/client.ts";
import type { Post } from "../mm_server/server.ts";
import { sendChat, uploadAs } from "../helpers/xmpp_share.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

let shared: Prosody | undefined;
let worlds = 0;

/** Runs `body` in a world of its own (room, stand-in, state) on the file's Prosody. */
async function inWorld(body: (w: World) => Promise<void>): Promise<void> {
  // Rooms that show occupants' addresses: a Mattermost user can write to a puppet whose address is known.
  shared ??= await startProsody({ mucRealJidsOnly: true });
  const w = await startWorld({ sharedProsody: shared, room: `direct${++worlds}` });
  try {
    await body(w);
  } finally {
    await w.stop();
  }
}

/** Component puppets, Mattermost puppets, and `extra`. */
function directEnv(w: World, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...componentEnv(w.prosody),
    BRIDGE_MM_PUPPETS: "true",
    MM_ADMIN_TOKEN: w.mm.admin.token,
    ...extra,
  };
}

/** The 1:1 messages (chat and error) `user` receives from now on. */
function inbox(user: XmppUser): { stanzas: Element[]; stop: () => void } {
  const stanzas: Element[] = [];
  const stop = user.onStanza((s) => {
    const type = s.attrs.type;
    if (s.is("message") && (type === "chat" || type === "error")) stanzas.push(s);
  });
  return { stanzas, stop };
}

/** Waits for the first stanza of `box` that `match` accepts. */
async function received(
  box: { stanzas: Element[] },
  match: (s: Element) => boolean,
  what: string,
): Promise<Element> {
  await waitFor(() => box.stanzas.some(match), what, 10_000).catch((err) => {
    throw new Error(`${err.message}; got: ${box.stanzas.map((s) => s.toString().slice(0, 300)).join("\n")}`);
  });
  return box.stanzas.find(match)!;
}

/** The direct channel between `userId` and `otherId` on the stand-in, once it exists. */
async function directChannel(w: World, userId: string, otherId: string): Promise<string> {
  await waitFor(() => w.mm.directChannelOf(userId, otherId) !== undefined, "the direct channel", 10_000);
  return w.mm.directChannelOf(userId, otherId)!;
}

/** The error text of an error stanza. */
function errorText(s: Element): string {
  return s.getChild("error")?.getChildText("text") ?? "";
}

Deno.test(
  "a chat to a puppet JID reaches the Mattermost DM with the XMPP user's puppet, and the answer comes back from it",
  opts,
  () =>
    inWorld(async (w) => {
      await w.startBridge(directEnv(w));
      const box = inbox(w.alice);
      try {
        const bobJid = `bob@${w.prosody.componentDomain}`;
        await sendChat(w.alice, bobJid, "hi bob, in private", "dm-1");
        const puppetId = await userIdOf(w.mm, "xmpp-alice");
        const dm = await directChannel(w, w.bob.id, puppetId);
        const [first] = await postsMatching(w.mm, dm, (p) => p.message === "hi bob, in private", 1);
        assert.equal(first.user_id, puppetId, "posted by alice's puppet, in the DM with bob");
        assert.equal(w.mm.posts(w.channel.id).length, 0, "nothing in the mapped channel");

        // Bob answers in the DM: a chat from his puppet JID, with the same value as id and origin-id.
        const answer = await w.mm.postAs(w.bob.id, dm, "hello alice, privately");
        const back = await received(box, (s) =>
          s.getChildText("body") === "hello alice, privately", "the answer");
        assert.equal(back.attrs.type, "chat");
        assert.equal(String(back.attrs.from).split("/")[0], bobJid, "from bob's puppet JID");
        const backId = String(back.attrs.id);
        assert.equal(back.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id, backId);

        // Bob edits it: an XEP-0308 correction pointing at the message's id.
        await w.mm.editAs(w.bob.id, answer.id, "hello alice, privately (edited)");
        const fix = await received(
          box,
          (s) =>
            s.getChildText("body") === "hello alice, privately (edited)",
          "the correction",
        );
        assert.equal(fix.getChild("replace", "urn:xmpp:message-correct:0")?.attrs.id, backId);

        // Alice reacts to it (XEP-0444 in 1:1 points at the message id): bob's post gets the puppet's reaction.
        await w.alice.send(
          xml(
            "message",
            { type: "chat", to: bobJid, id: "react-1" },
            xml("reactions", { xmlns: "urn:xmpp:reactions:0", id: backId }, xml("reaction", {}, "👍")),
          ),
        );
        await waitFor(
          () =>
            (w.mm.post(answer.id)?.metadata?.reactions ?? []).some((r) => r.user_id === puppetId),
          "alice's reaction on bob's post",
        ).catch(() => {
          throw new Error(`no reaction; post: ${JSON.stringify(w.mm.post(answer.id))}`);
        });

        // Alice corrects her own first message: the DM post is edited.
        await sendChat(
          w.alice,
          bobJid,
          "hi bob, in private (fixed)",
          "dm-2",
          xml("replace", { xmlns: "urn:xmpp:message-correct:0", id: "dm-1" }),
        );
        await waitFor(() =>
          w.mm.post(first.id)?.message === "hi bob, in private (fixed)", "the edited DM post");

        // Bob reacts to it: a 1:1 reaction (XEP-0444) points at the message's id, not its origin-id.
        await w.mm.reactAs(w.bob.id, first.id, "tada");
        const reaction = await received(
          box,
          (s) =>
            s.getChild("reactions", "urn:xmpp:reactions:0") !== undefined,
          "bob's reaction",
        );
        const reactions = reaction.getChild("reactions", "urn:xmpp:reactions:0")!;
        assert.equal(reactions.attrs.id, "dm-1");
        assert.deepEqual(
          reactions.getChildren("reaction").map((r: Element) =>
            r.getText()
          ),
          ["🎉"],
        );
        assert.equal(String(reaction.attrs.from).split("/")[0], bobJid);

        // Alice retracts it (XEP-0424 in 1:1 points at the origin-id): the post is deleted.
        await w.alice.send(
          xml(
            "message",
            { type: "chat", to: bobJid, id: "retract-1" },
            xml("retract", { xmlns: "urn:xmpp:message-retract:1", id: "dm-1-origin" }),
            xml("body", {}, "retracted"),
          ),
        );
        await waitFor(() => (w.mm.post(first.id)?.delete_at ?? 0) > 0, "the deleted DM post");
      } finally {
        box.stop();
      }
    }),
);

Deno.test(
  "a Mattermost user can write to an XMPP user's puppet first; files both ways and a deletion in the DM",
  opts,
  () =>
    inWorld(async (w) => {
      await w.startBridge(directEnv(w));
      const box = inbox(w.alice);
      try {
        // Alice is seen in the room (which shows her address): her puppet exists, and listens for direct messages.
        await w.alice.sendGroupchat(w.room, "hello room");
        const puppetId = await userIdOf(w.mm, "xmpp-alice");
        await postsMatching(w.mm, w.channel.id, (p: Post) => p.user_id === puppetId, 1);
        await waitFor(() => w.mm.websocketCount(puppetId) > 0, "the puppet's websocket");
        const bobClient = new mm.Client4();
        bobClient.setUrl(w.mm.url);
        bobClient.setToken(w.bob.token);
        const dm = await bobClient.createDirectChannel([w.bob.id, puppetId]);
        await w.mm.postAs(w.bob.id, dm.id, "psst, alice");
        const first = await received(box, (s) => s.getChildText("body") === "psst, alice", "bob's first DM");
        assert.equal(String(first.attrs.from).split("/")[0], `bob@${w.prosody.componentDomain}`);

        // A file bob sends there is copied to the XMPP server's upload service and sent as its URL (XEP-0066).
        const upload = await bobClient.uploadFile(
          (() => {
            const form = new FormData();
            form.append("channel_id", dm.id);
            form.append("files", new Blob([new TextEncoder().encode("secret plans")]), "plans.txt");
            return form;
          })(),
        );
        const fileId = upload.file_infos[0].id;
        await bobClient.createPost({ channel_id: dm.id, message: "", file_ids: [fileId] } as never);
        const file = await received(
          box,
          (s) => s.getChild("x", "jabber:x:oob") !== undefined,
          "the file",
        );
        const url = file.getChild("x", "jabber:x:oob")!.getChildText("url")!;
        assert.equal(file.getChildText("body"), url);
        assert.equal(await (await fetch(url)).text(), "secret plans");

        // Alice answers the puppet JID: it lands in that same DM.
        await sendChat(w.alice, `bob@${w.prosody.componentDomain}`, "got it", "dm-a");
        await postsMatching(w.mm, dm.id, (p) => p.message === "got it" && p.user_id === puppetId, 1);

        // A file alice shares in the conversation (XEP-0363 upload, XEP-0066 link) is posted there by her puppet.
        const aliceUrl = await uploadAs(
          w.alice,
          w.prosody.uploadDomain,
          "reply.txt",
          new TextEncoder().encode("my answer"),
        );
        await sendChat(
          w.alice,
          `bob@${w.prosody.componentDomain}`,
          aliceUrl,
          "dm-file",
          xml("x", { xmlns: "jabber:x:oob" }, xml("url", {}, aliceUrl)),
        );
        const [shared] = await postsMatching(w.mm, dm.id, (p) =>
          (p.file_ids?.length ?? 0) > 0 && p.user_id === puppetId, 1);
        const fileUrl = `${w.mm.url}/api/v4/files/${shared.file_ids![0]}`;
        const auth = { headers: { Authorization: `Bearer ${w.bob.token}` } };
        assert.equal((await (await fetch(`${fileUrl}/info`, auth)).json()).name, "reply.txt");
        assert.equal(await (await fetch(fileUrl, auth)).text(), "my answer", "bob may read it in his DM");

        // Bob deletes his first message: a 1:1 retraction pointing at its origin-id.
        const psst = w.mm.posts(dm.id).find((p) =>
          p.message === "psst, alice"
        )!;
        await w.mm.deleteAs(w.bob.id, psst.id);
        const retraction = await received(
          box,
          (s) =>
            s.getChild("retract", "urn:xmpp:message-retract:1") !== undefined,
          "the retraction",
        );
        assert.equal(
          retraction.getChild("retract", "urn:xmpp:message-retract:1")!.attrs.id,
          first.getChild("origin-id", "urn:xmpp:sid:0")!.attrs.id,
        );
      } finally {
        box.stop();
      }
    }),
);

Deno.test(
  "what cannot be delivered comes back as an XMPP error saying why: nobody's JID, the bridge's, a domain, a room PM",
  opts,
  () =>
    inWorld(async (w) => {
      const bridge = await w.startBridge(directEnv(w));
      const box = inbox(w.alice);
      try {
        // A JID of the component that is no Mattermost user: refused by Mattermost's side, answered on XMPP.
        await sendChat(w.alice, `nobody@${w.prosody.componentDomain}`, "anyone there?", "lost-1");
        const nobody = await received(box, (s) => s.attrs.id === "lost-1", "the error for nobody@");
        assert.equal(nobody.attrs.type, "error");
        assert.match(errorText(nobody), /there is no Mattermost user nobody/);
        // The bridge's own account is nobody's ghost.
        await sendChat(w.alice, "bridge@localhost", "hello bridge", "lost-2");
        const own = await received(box, (s) => s.attrs.id === "lost-2", "the error for the bridge's JID");
        assert.equal(own.attrs.type, "error");
        assert.match(errorText(own), /is the bridge itself/);
        // A private message through the room is answered with an error the room passes on (not-acceptable), not
        // one it takes for a bounce and kicks the bridge for: the room keeps being bridged.
        await w.alice.send(
          xml(
            "message",
            { type: "chat", to: `${w.room}/bridge`, id: "lost-pm" },
            xml("body", {}, "psst, bridge"),
          ),
        );
        const pm = await received(box, (s) => s.attrs.id === "lost-pm", "the error for a private message");
        assert.ok(pm.getChild("error")?.getChild("not-acceptable"), "condition not-acceptable");
        assert.match(errorText(pm), /private messages through a room are not bridged/);
        await w.alice.sendGroupchat(w.room, "still bridged after the private message");
        await postsMatching(w.mm, w.channel.id, (p) =>
          p.message === "still bridged after the private message", 1);
        await bridge.stop();

        // A domain the admin has not allowed.
        await w.startBridge(directEnv(w, { BRIDGE_DM_ALLOWED_DOMAINS: "example.test" }));
        await sendChat(w.alice, `bob@${w.prosody.componentDomain}`, "let me in", "lost-3");
        const domain = await received(box, (s) =>
          s.attrs.id === "lost-3", "the error for the domain");
        assert.equal(domain.attrs.type, "error");
        assert.ok(domain.getChild("error")?.getChild("not-allowed"), "condition not-allowed");
        assert.match(errorText(domain), /direct messages from localhost are not accepted/);
        assert.deepEqual(
          w.mm.posts(w.channel.id).map((p) =>
            p.message
          ),
          ["still bridged after the private message"],
        );
      } finally {
        box.stop();
      }
    }),
);

Deno.test(
  "with Mattermost puppets off, or to a deactivated user (also in an open conversation), a DM is refused with why",
  opts,
  () =>
    inWorld(async (w) => {
      const env = directEnv(w);
      delete env.BRIDGE_MM_PUPPETS;
      const bridge = await w.startBridge(env);
      const box = inbox(w.alice);
      try {
        await sendChat(w.alice, `bob@${w.prosody.componentDomain}`, "hello?", "off-1");
        const off = await received(box, (s) => s.attrs.id === "off-1", "the error with puppets off");
        assert.match(errorText(off), /Mattermost puppets are off/);
        await bridge.stop();

        const carol = w.mm.createUser("carol");
        const admin = new mm.Client4();
        admin.setUrl(w.mm.url);
        admin.setToken(w.mm.admin.token);
        await admin.updateUserActive(carol.id, false);
        await w.startBridge(directEnv(w));
        await sendChat(w.alice, `carol@${w.prosody.componentDomain}`, "hello carol", "gone-1");
        const gone = await received(box, (s) => s.attrs.id === "gone-1", "the error for a deactivated user");
        assert.match(errorText(gone), /carol is deactivated on Mattermost/);

        // A conversation already open: its user deactivated since, the next message is refused too.
        const bob = `bob@${w.prosody.componentDomain}`;
        await sendChat(w.alice, bob, "hello bob", "open-1");
        const puppetId = await userIdOf(w.mm, "xmpp-alice");
        await postsMatching(w.mm, await directChannel(w, w.bob.id, puppetId), (p) =>
          p.message === "hello bob", 1);
        await admin.updateUserActive(w.bob.id, false);
        await sendChat(w.alice, bob, "are you gone?", "gone-2");
        const left = await received(box, (s) =>
          s.attrs.id === "gone-2", "the error for a user gone since");
        assert.match(errorText(left), /bob is deactivated on Mattermost/);
      } finally {
        box.stop();
      }
    }),
);

Deno.test(
  "after a restart, a Mattermost user can write first to a puppet that has not spoken since (every active puppet listens)",
  opts,
  () =>
    inWorld(async (w) => {
      const box = inbox(w.alice);
      try {
        // Alice is seen in the room: her puppet exists. No direct conversation is opened.
        const first = await w.startBridge(directEnv(w));
        await w.alice.sendGroupchat(w.room, "hello before the restart");
        const puppetId = await userIdOf(w.mm, "xmpp-alice");
        await postsMatching(w.mm, w.channel.id, (p: Post) => p.user_id === puppetId, 1);
        await first.stop();

        // After the restart alice says nothing; bob opens a DM with her puppet and writes first.
        await w.startBridge(directEnv(w));
        await waitFor(() => w.mm.websocketCount(puppetId) > 0, "the stored puppet's websocket");
        const bobClient = new mm.Client4();
        bobClient.setUrl(w.mm.url);
        bobClient.setToken(w.bob.token);
        const dm = await bobClient.createDirectChannel([w.bob.id, puppetId]);
        await w.mm.postAs(w.bob.id, dm.id, "are you there, alice?");
        await received(box, (s) => s.getChildText("body") === "are you there, alice?", "bob's first DM");
      } finally {
        box.stop();
      }
    }),
);

Deno.test({
  name: "direct: stop the shared Prosody",
  ...opts,
  async fn() {
    await shared?.stop();
    shared = undefined;
  },
});
