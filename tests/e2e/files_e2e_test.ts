/**
 * Files both ways, against Prosody's mod_http_file_share (XEP-0363 at upload.localhost) and the stand-in's files
 * routes: a Mattermost post's files are uploaded to the XMPP server and shared as XEP-0066 messages whose body is the
 * URL; a file an XMPP user shares by URL is downloaded, uploaded with `POST /files` and posted with `file_ids`. Over
 * a size limit, or from a host the bridge may not download from, the file goes as a link with a notice.
 *
 * One Prosody serves every test of the file; each test has its own room.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import {
  componentEnv,
  postsMatching,
  startWorld,
  type World,
  type WorldOptions,
} from "../helpers/harness.ts";
import { type Prosody, startProsody } from "../helpers/prosody.ts";
import type { GroupchatMessage } from "../helpers/xmpp_user.ts";
import type { Post } from "../mm_server/server.ts";
import { FileUnavailable } from "../../src/core/bridge.ts";
import { uploadApi } from "../../src/xmpp/xeps/xep0363.ts";
import { uploadAs } from "../helpers/xmpp_share.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS_OOB = "jabber:x:oob";

let shared: Prosody | undefined;
let rooms = 0;

/** Runs `body` in a world of its own (own room, stand-in and state) on the file's Prosody. */
async function inWorld(body: (w: World) => Promise<void>, options: WorldOptions = {}): Promise<void> {
  shared ??= await startProsody();
  const w = await startWorld({ ...options, sharedProsody: shared, room: `files${++rooms}` });
  try {
    await body(w);
  } finally {
    await w.stop();
  }
}

/** `n` bytes that differ from file to file. */
function bytes(n: number, seed = 7): Uint8Array<ArrayBuffer> {
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = (i * 31 + seed) % 251;
  return data;
}

/** Uploads a file to the channel as bob, through the API as a client would; resolves with its id. */
async function uploadAsBob(
  w: World,
  name: string,
  data: Uint8Array<ArrayBuffer>,
  type = "image/png",
): Promise<string> {
  const form = new FormData();
  form.append("channel_id", w.channel.id);
  form.append("files", new File([data], name, { type }));
  const res = await fetch(`${w.mm.url}/api/v4/files`, {
    method: "POST",
    headers: { Authorization: `Bearer ${w.bob.token}` },
    body: form,
  });
  const answer = await res.json();
  assert.equal(res.status, 201, JSON.stringify(answer));
  return answer.file_infos[0].id;
}

/** Uploads as bob with MaxFileSize raised for that upload only (the bridge keeps the limit it read). */
async function uploadAsBobAllowing(w: World, name: string, data: Uint8Array<ArrayBuffer>): Promise<string> {
  const was = w.mm.config.maxFileSize;
  w.mm.setConfig({ maxFileSize: 100 * 1024 * 1024 });
  try {
    return await uploadAsBob(w, name, data, "application/octet-stream");
  } finally {
    w.mm.setConfig({ maxFileSize: was });
  }
}

/** A Mattermost file's bytes, read as an admin. */
async function mmFile(w: World, fileId: string): Promise<{ name: string; data: Uint8Array }> {
  const headers = { Authorization: `Bearer ${w.mm.admin.token}` };
  const info = await (await fetch(`${w.mm.url}/api/v4/files/${fileId}/info`, { headers })).json();
  const res = await fetch(`${w.mm.url}/api/v4/files/${fileId}`, { headers });
  assert.equal(res.status, 200);
  return { name: info.name, data: new Uint8Array(await res.arrayBuffer()) };
}

/** Shares `url` in the room as alice, as Conversations does: the body is the URL, with an OOB element. */
function shareAsAlice(w: World, url: string, body = url): Promise<string> {
  return w.alice.sendGroupchat(w.room, body, {
    children: [xml("x", { xmlns: NS_OOB }, xml("url", {}, url))],
  });
}

function oobUrl(m: GroupchatMessage): string | undefined {
  return m.stanza.getChild("x", NS_OOB)?.getChildText("url") ?? undefined;
}

async function download(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return new Uint8Array(await res.arrayBuffer());
}

const byBot = (w: World) => (p: Post) => p.user_id === w.mm.bot.id;

/** The bot's posts in the world's channel, newest last. */
const botPosts = (w: World) => w.mm.posts(w.channel.id).filter(byBot(w));

Deno.test(
  "relay: files both ways, and a link for a host the bridge may not download from",
  opts,
  async (t) => {
    await inWorld(async (w) => {
      const bridge = await w.startBridge();

      await t.step("a post's text and file reach the room as a relayed line and an OOB upload", async () => {
        const data = bytes(3000);
        const fileId = await uploadAsBob(w, "cat photo.png", data);
        const post = await w.mm.postAs(w.bob.id, w.channel.id, "look at this", { file_ids: [fileId] });

        const [text, file] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge", 2, 15_000);
        assert.equal(text.body, "<bob> look at this");
        assert.equal(oobUrl(file), file.body, "the body is exactly the OOB URL, so clients show it inline");
        assert.match(file.body!, /^http:\/\/127\.0\.0\.1:\d+\/.*cat%20photo\.png$/);
        assert.deepEqual(await download(file.body!), data, "the upload holds the file's bytes");

        await bridge.manager.bus.drain();
        const link = await bridge.store.findLink("mattermost", w.channel.id, post.id);
        const parts = link?.refs.xmpp.parts ?? [];
        assert.equal(parts.length, 2, "both parts are in the id map");
        assert.deepEqual(parts.map((p) => p.stanzaId), [text.stanzaId, file.stanzaId]);
        assert.ok(parts.every((p) => p.sender.kind === "relay"));
        // The room's reflection of the bridge's own upload is not bridged back.
        assert.equal(botPosts(w).length, 0, "no echo");
      });

      await t.step(
        "a file shared in the room is uploaded to Mattermost and posted with file_ids",
        async () => {
          const data = bytes(5000, 3);
          const url = await uploadAs(w.alice, w.prosody.uploadDomain, "notes.txt", data);
          await shareAsAlice(w, url);

          const [post] = await postsMatching(w.mm, w.channel.id, byBot(w), 1, 15_000);
          assert.equal(post.message, "", "a bare upload has no text");
          assert.equal(post.props?.override_username, "alice (xmpp)");
          assert.equal(post.file_ids?.length, 1);
          const file = await mmFile(w, post.file_ids![0]);
          assert.equal(file.name, "notes.txt");
          assert.deepEqual(file.data, data);
          await bridge.manager.bus.drain();
          assert.equal(
            w.alice.messages.filter((m) => m.room === w.room && m.nick === "bridge").length,
            2,
            "no echo",
          );
        },
      );

      await t.step(
        "a file shared from a host not allowed over http is posted as a link, never fetched",
        async () => {
          let requests = 0;
          const elsewhere = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
            requests++;
            return new Response("secret intranet page");
          });
          try {
            const url = `http://127.0.0.1:${elsewhere.addr.port}/report.pdf`;
            await shareAsAlice(w, url);
            const [, post] = await postsMatching(w.mm, w.channel.id, byBot(w), 2, 15_000);
            assert.equal(
              post.message,
              `📎 report.pdf: ${url} (not copied: the bridge does not download over plain http from ` +
                `127.0.0.1:${elsewhere.addr.port} (see BRIDGE_FILE_FETCH_HOSTS))`,
            );
            assert.equal(requests, 0, "nothing was requested from the refused host");
          } finally {
            await elsewhere.shutdown();
          }
        },
      );
    });
  },
);

Deno.test(
  "component: files travel in the author's voice both ways, the OOB message with no relay line",
  opts,
  async () => {
    await inWorld(async (w) => {
      const bridge = await w.startBridge({
        ...componentEnv(w.prosody),
      });
      const data = bytes(2048, 11);
      const fileId = await uploadAsBob(w, "diagram.png", data);
      const post = await w.mm.postAs(w.bob.id, w.channel.id, "", { file_ids: [fileId] });
      const [file] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
      assert.equal(oobUrl(file), file.body);
      assert.deepEqual(await download(file.body!), data);
      await bridge.manager.bus.drain();
      const parts = (await bridge.store.findLink("mattermost", w.channel.id, post.id))?.refs.xmpp.parts;
      assert.deepEqual(parts?.map((p) => p.sender), [{ kind: "puppet", id: "bob@bridge.localhost" }]);

      const reply = bytes(1200, 5);
      const url = await uploadAs(w.alice, w.prosody.uploadDomain, "reply.txt", reply);
      await shareAsAlice(w, url, `here you go ${url}`);
      const [back] = await postsMatching(w.mm, w.channel.id, byBot(w), 1, 15_000);
      assert.equal(back.message, "here you go", "the text without the URL, the file attached");
      assert.deepEqual((await mmFile(w, back.file_ids![0])).data, reply);
      assert.equal(w.mm.posts(w.channel.id).length, 2, "no echo of bob's file");
    });
  },
);

Deno.test("ibr: a post's text and file come from the author's registered ghost", opts, async () => {
  await inWorld(async (w) => {
    const bridge = await w.startBridge({
      BRIDGE_GHOST_MODE: "ibr",
      BRIDGE_SECRET_KEY: "a-long-random-key-for-the-tests-0123456789",
    });
    const data = bytes(1500, 13);
    const fileId = await uploadAsBob(w, "map.png", data);
    const post = await w.mm.postAs(w.bob.id, w.channel.id, "the map", { file_ids: [fileId] });
    const [text, file] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 2, 15_000);
    assert.equal(text.body, "the map");
    assert.equal(oobUrl(file), file.body);
    assert.deepEqual(await download(file.body!), data);
    await bridge.manager.bus.drain();
    const parts = (await bridge.store.findLink("mattermost", w.channel.id, post.id))?.refs.xmpp.parts;
    assert.deepEqual(parts?.map((p) => p.sender), [
      { kind: "ghost", id: "mm_bob@localhost" },
      { kind: "ghost", id: "mm_bob@localhost" },
    ]);
    assert.equal(w.mm.posts(w.channel.id).length, 1, "no echo");
  });
});

Deno.test("over a size limit, a file goes as a link with a notice, never dropped", opts, async (t) => {
  await inWorld(async (w) => {
    // Known before the bridge first reads it; raised and lowered again below.
    w.mm.setConfig({ maxFileSize: 1000 });
    await w.startBridge();

    await t.step(
      "larger than the upload service's advertised max-file-size: known from the file's size, its body never read",
      async () => {
        // Prosody's mod_http_file_share advertises 10 MiB by default.
        const fileId = await uploadAsBobAllowing(w, "huge.bin", bytes(10 * 1024 * 1024 + 1));
        await w.mm.postAs(w.bob.id, w.channel.id, "", { file_ids: [fileId] });
        const [label, notice] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge", 2, 15_000);
        assert.equal(label.body, "<bob> 📎 huge.bin");
        assert.equal(
          notice.body,
          `<bob> 📎 huge.bin: ${w.mm.url}/api/v4/files/${fileId}?download=1 ` +
            "(not copied: it is 10485761 bytes, larger than the 10 MiB limit)",
        );
        assert.equal(oobUrl(notice), undefined, "a link, not an upload");
      },
    );

    await t.step("a slot the service refuses as too large names the limit from its answer", async () => {
      // As when the service states no max-file-size in its disco#info: only its answer tells the limit.
      const api = uploadApi({ iqCaller: { request: (el, t) => w.alice.iq(el, t) } }, w.prosody.uploadDomain);
      const err = await api.requestSlot({ name: "huge.bin", size: 20 * 1024 * 1024 }).catch((e) => e);
      assert.ok(err instanceof FileUnavailable, String(err));
      assert.equal(err.problem, "too-large");
      assert.equal(err.message, "it is larger than the 10 MiB limit");
      const slot = await api.requestSlot({ name: "ok.txt", size: 3, mimeType: "text/plain" });
      assert.match(slot.get, /^http:\/\/127\.0\.0\.1:\d+\/.*ok\.txt$/);
      assert.ok(
        Object.keys(slot.headers).every((h) =>
          ["authorization", "cookie", "expires"].includes(h.toLowerCase())
        ),
      );
    });

    await t.step(
      "larger than Mattermost's MaxFileSize (from its client config): refused by the download's length",
      async () => {
        const url = await uploadAs(w.alice, w.prosody.uploadDomain, "big.txt", bytes(4000));
        await shareAsAlice(w, url, `big one ${url}`);
        const [post] = await postsMatching(w.mm, w.channel.id, byBot(w), 1, 15_000);
        assert.equal(post.file_ids, undefined);
        assert.equal(
          post.message,
          `big one\n📎 big.txt: ${url} (not copied: it is 3.9 KiB, larger than the 1000 bytes limit)`,
        );
      },
    );

    await t.step("Mattermost's 413, for a MaxFileSize lowered since the bridge read it", async () => {
      w.mm.setConfig({ maxFileSize: 500 });
      const url = await uploadAs(w.alice, w.prosody.uploadDomain, "later.txt", bytes(800));
      await shareAsAlice(w, url);
      const [, post] = await postsMatching(w.mm, w.channel.id, byBot(w), 2, 15_000);
      assert.equal(post.file_ids, undefined);
      assert.equal(post.message, `📎 later.txt: ${url} (not copied: it is larger than Mattermost accepts)`);
    });
  });
});

Deno.test(
  "restart: a file posted while the bridge was down is caught up once; the one before it is not sent again",
  opts,
  async () => {
    await inWorld(async (w) => {
      const first = await w.startBridge();
      const before = await uploadAsBob(w, "before.png", bytes(100, 1));
      await w.mm.postAs(w.bob.id, w.channel.id, "", { file_ids: [before] });
      await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge" && !!oobUrl(m), 1, 15_000);
      await first.manager.bus.drain();
      await first.stop();

      const data = bytes(700, 9);
      const during = await uploadAsBob(w, "during.png", data);
      await w.mm.postAs(w.bob.id, w.channel.id, "while you were away", { file_ids: [during] });
      const again = await w.startBridge();
      const got = await w.alice.waitForMessages(w.room, (m) => m.nick === "bridge" && !!oobUrl(m), 2, 15_000);
      assert.deepEqual(await download(got[1].body!), data);
      await again.manager.bus.drain();
      const uploads = w.alice.messages.filter((m) => m.room === w.room && !!oobUrl(m));
      assert.equal(uploads.length, 2, "each file once");
    });
  },
);

Deno.test({
  name: "files: stop the shared Prosody",
  ...opts,
  fn: async () => {
    await shared?.stop();
  },
});
