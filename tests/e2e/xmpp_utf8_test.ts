/**
 * Multi-byte characters whose bytes reach the bridge in two socket reads arrive intact.
 *
 * A proxy between the bridge and the real Prosody cuts what Prosody sends inside multi-byte characters and waits,
 * after each piece, until the bridge has read it (see tests/helpers/splitting_proxy.ts), so every cut is a read
 * boundary, every run. The client tests use direct TLS (`xmpps://`) terminated at the proxy, so that the proxy sees
 * and cuts the plaintext: the bridge then reads through its real TLS socket, the same socket class as after
 * STARTTLS. The component stream (XEP-0114) is plain TCP.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { Element } from "@xmpp/xml";
import { postsMatching, startWorld, waitFor } from "../helpers/harness.ts";
import { startSplittingProxy } from "../helpers/splitting_proxy.ts";
import { startProsody } from "../helpers/prosody.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";
import { createXmppClient } from "../../src/xmpp/session/client.ts";
import { XmppComponent } from "../../src/xmpp/intents/component.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** 2-, 3- and 4-byte characters, next to ASCII and each other. */
const MIXED = "é 中 😀 — ça marche: 日本語, Ελληνικά, עברית, 🎉👍🏽 x😀y中zé";

/** About 200 KB of UTF-8, almost all of it multi-byte characters. */
function bigText(): string {
  const line = "中文和日本語のテキスト 😀🎉 éàüß Ελληνικά\n";
  return line.repeat(Math.ceil(200_000 / new TextEncoder().encode(line).length));
}

function tlsFiles(dir: string) {
  return {
    cert: Deno.readTextFileSync(`${dir}/localhost.crt`),
    key: Deno.readTextFileSync(`${dir}/localhost.key`),
  };
}

Deno.test(
  "multi-byte characters cut across reads reach Mattermost byte for byte (é, 中, 😀; ~200 KB)",
  opts,
  async () => {
    const w = await startWorld();
    const proxy = await startSplittingProxy({ targetPort: w.prosody.c2sPort, tls: tlsFiles(w.prosody.dir) });
    try {
      await w.startBridge({ XMPP_SERVICE: `xmpps://127.0.0.1:${proxy.port}` });
      const fromBridge = (p: { user_id: string }) => p.user_id === w.mm.bot.id;

      // Cut inside every character, at every byte.
      const cutsBefore = proxy.cuts;
      await w.alice.sendGroupchat(w.room, MIXED);
      const [post] = await postsMatching(w.mm, w.channel.id, fromBridge, 1, 15_000);
      assert.equal(post.message, MIXED);
      assert.ok(proxy.cuts - cutsBefore >= 40, `only ${proxy.cuts - cutsBefore} cuts`);

      // One cut inside a character every ~2 KB of a long text, each one a separate read.
      proxy.minSpacing = 2_000;
      const text = bigText();
      const cutsBeforeBig = proxy.cuts;
      await w.alice.sendGroupchat(w.room, text);
      const joined = () =>
        w.mm.posts(w.channel.id).filter(fromBridge).slice(1).map((p) => p.message).join("");
      await waitFor(() => joined().length >= text.length, "the long text in Mattermost", 30_000);
      assert.ok(
        joined() === text,
        `the long text differs; U+FFFD ${[...joined()].filter((c) => c === "\ufffd").length} times`,
      );
      assert.ok(proxy.cuts - cutsBeforeBig >= 90, `only ${proxy.cuts - cutsBeforeBig} cuts`);
    } finally {
      await proxy.close();
      await w.stop();
    }
  },
);

Deno.test(
  "a connection dropped inside a character leaves nothing behind for the reconnected stream",
  opts,
  async () => {
    const prosody = await startProsody();
    const proxy = await startSplittingProxy({
      targetPort: prosody.c2sPort,
      tls: tlsFiles(prosody.dir),
      dropFirstAfterCuts: 1,
    });
    const client = createXmppClient({
      service: `xmpps://127.0.0.1:${proxy.port}`,
      domain: "localhost",
      username: "bridge",
      password: "bridge-password",
      resource: "utf8",
      tls: { ca: Deno.readTextFileSync(prosody.caFile) },
    });
    const errors: string[] = [];
    const bodies: string[] = [];
    client.on("error", (err: Error) => errors.push(err.message));
    client.on("stanza", (stanza: Element) => {
      if (stanza.is("message")) bodies.push(stanza.getChildText("body") ?? "");
    });
    let alice;
    try {
      await prosody.register("bridge", "bridge-password");
      await prosody.register("alice", "alice-password");
      alice = await connectXmppUser(prosody, "alice", "alice-password", "phone");
      client.reconnect.delay = 100;
      await client.start();
      let online = 0;
      client.on("online", () => online++);

      // The proxy hands over the first byte of 😀, then drops the connection.
      await alice.send(
        xml("message", { to: "bridge@localhost/utf8", type: "chat" }, xml("body", {}, "😀 lost")),
      );
      await waitFor(() => online === 1, "the reconnection", 10_000);
      await alice.send(xml("message", { to: "bridge@localhost/utf8", type: "chat" }, xml("body", {}, MIXED)));
      await waitFor(() => bodies.length >= 1, "the message after the reconnection", 10_000);

      assert.deepEqual(bodies, [MIXED]);
      // A stale partial character would reach the new stream's parser before its header: a parser error, and one
      // more reconnection.
      assert.deepEqual(errors, []);
      assert.equal(proxy.connections, 2);
    } finally {
      client.reconnect.stop();
      await client.stop().catch(() => {});
      await alice?.stop();
      await proxy.close();
      await prosody.stop();
    }
  },
);

Deno.test("multi-byte characters cut across reads reach an XEP-0114 component intact", opts, async () => {
  const prosody = await startProsody();
  const proxy = await startSplittingProxy({ targetPort: prosody.componentPort });
  const component = new XmppComponent({
    service: `xmpp://127.0.0.1:${proxy.port}`,
    domain: prosody.componentDomain,
    secret: prosody.componentSecret,
  });
  const bodies: string[] = [];
  component.on("stanza", (stanza) => {
    if (stanza.is("message")) bodies.push(stanza.getChildText("body") ?? "");
  });
  let alice;
  try {
    await prosody.register("alice", "alice-password");
    alice = await connectXmppUser(prosody, "alice", "alice-password", "phone");
    await component.start();
    const to = `bob@${prosody.componentDomain}`;
    await alice.send(xml("message", { to, type: "chat" }, xml("body", {}, MIXED)));
    await waitFor(() => bodies.length >= 1, "the short message", 10_000);
    proxy.minSpacing = 2_000;
    const text = bigText();
    await alice.send(xml("message", { to, type: "chat" }, xml("body", {}, text)));
    await waitFor(() => bodies.length >= 2, "the long message", 20_000);

    assert.equal(bodies[0], MIXED);
    assert.ok(
      bodies[1] === text,
      `the long text differs; U+FFFD ${[...bodies[1]].filter((c) => c === "\ufffd").length} times`,
    );
    assert.ok(proxy.cuts >= 130, `only ${proxy.cuts} cuts`);
  } finally {
    await component.stop();
    await alice?.stop();
    await proxy.close();
    await prosody.stop();
  }
});
