import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { xml } from "@xmpp/client";
import { type Prosody, startProsody } from "./prosody.ts";
import { deadline } from "../../src/core/deadline.ts";
import { connectXmppUser, StanzaError, type XmppUser } from "./xmpp_user.ts";

/** Starts Prosody with accounts alice and bob, runs `fn`, and stops everything whatever happens. */
async function withServer(fn: (prosody: Prosody, cleanup: (user: XmppUser) => XmppUser) => Promise<void>) {
  const prosody = await startProsody();
  const users: XmppUser[] = [];
  try {
    await prosody.register("alice", "alice-pw");
    await prosody.register("bob", "bob-pw");
    await fn(prosody, (user) => {
      users.push(user);
      return user;
    });
  } catch (error) {
    console.error(prosody.logTail());
    throw error;
  } finally {
    await Promise.all(users.map((user) => user.stop()));
    await prosody.stop();
  }
}

/** Command lines of live processes that mention `text` (the temp dir is unique to one server). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(text)) found.push(`${entry.name}: ${cmdline}`);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** Reads from `conn` until the text received matches `pattern`. */
async function readUntil(conn: Deno.Conn, pattern: RegExp): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(16_384);
  let text = "";
  while (!pattern.test(text)) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`connection closed; received: ${text}`);
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
  return text;
}

const streamHeader = (ns: string, to: string) =>
  `<?xml version='1.0'?><stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams' ` +
  `to='${to}' version='1.0'>`;

Deno.test("a room message with emoji and line breaks reaches the other occupant with the room's stanza-id", async () => {
  await withServer(async (prosody, cleanup) => {
    const alice = cleanup(await connectXmppUser(prosody, "alice", "alice-pw", "test"));
    const bob = cleanup(await connectXmppUser(prosody, "bob", "bob-pw"));
    assert.equal(alice.jid, "alice@localhost/test");

    await alice.joinRoom("lobby", "Alice");
    await bob.joinRoom("lobby@conference.localhost", "Bob", { maxstanzas: 0 });

    const body = "Grüße 👋🏽 from ℵ\nsecond line\n\n  indented <b>&amp;</b>";
    const id = await alice.sendGroupchat("lobby", body);

    const [received] = await bob.waitForMessages("lobby", (m) => m.body === body);
    assert.equal(received.room, "lobby@conference.localhost");
    assert.equal(received.nick, "Alice");
    assert.equal(received.from, "lobby@conference.localhost/Alice");
    assert.equal(received.id, id);
    assert.equal(received.originId, id);
    assert.equal(received.delayed, false);
    assert.ok(received.stanzaId, "muc_mam stamps a stanza-id by the room");
    assert.equal(
      received.stanza.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.by,
      "lobby@conference.localhost",
    );

    const [echo] = await alice.waitForMessages("lobby", (m) => m.id === id);
    assert.equal(echo.stanzaId, received.stanzaId, "the sender's echo carries the same stanza-id");
  });
});

Deno.test("joining with a nick already in the room fails with conflict", async () => {
  await withServer(async (prosody, cleanup) => {
    const alice = cleanup(await connectXmppUser(prosody, "alice", "alice-pw"));
    const bob = cleanup(await connectXmppUser(prosody, "bob", "bob-pw"));
    await alice.joinRoom("lobby", "Sam");
    await assert.rejects(
      bob.joinRoom("lobby", "Sam"),
      (error) => error instanceof StanzaError && error.condition === "conflict",
    );
    await bob.joinRoom("lobby", "Sam2");
    // Leaving is seen by the other occupant.
    const samLeft = new Promise<void>((resolve) => {
      const off = bob.onStanza((s) => {
        if (
          s.is("presence") && s.attrs.from === "lobby@conference.localhost/Sam" &&
          s.attrs.type === "unavailable"
        ) {
          off();
          resolve();
        }
      });
    });
    await alice.leaveRoom("lobby");
    await deadline(samLeft, 5_000, () => new Error("bob did not see Sam leave"));
  });
});

Deno.test("after kill() and restart() accounts survive and users connect and chat again", async () => {
  await withServer(async (prosody, cleanup) => {
    const before = cleanup(await connectXmppUser(prosody, "alice", "alice-pw"));
    await before.joinRoom("lobby", "Alice");

    await prosody.kill();
    assert.deepEqual(processesMentioning(prosody.dir), [], "no Prosody process outlives kill()");
    await before.stop();

    await prosody.restart();
    const alice = cleanup(await connectXmppUser(prosody, "alice", "alice-pw"));
    const bob = cleanup(await connectXmppUser(prosody, "bob", "bob-pw"));
    await alice.joinRoom("lobby", "Alice");
    await bob.joinRoom("lobby", "Bob");
    await alice.sendGroupchat("lobby", "still here");
    const [message] = await bob.waitForMessages("lobby", (m) => m.body === "still here");
    assert.ok(message.stanzaId);
  });
});

Deno.test("a user with reconnect enabled rejoins its rooms after the server restarts", async () => {
  await withServer(async (prosody, cleanup) => {
    const alice = cleanup(await connectXmppUser(prosody, "alice", "alice-pw", { reconnect: true }));
    await alice.joinRoom("lobby", "Alice");

    await prosody.kill();
    await prosody.restart();

    const bob = cleanup(await connectXmppUser(prosody, "bob", "bob-pw"));
    // Alice reconnects (after 1 s) and rejoins on her own; she is back once her messages echo again.
    const deadline = Date.now() + 10_000;
    while (true) {
      const id = await alice.sendGroupchat("lobby", "ping").catch(() => undefined);
      if (
        id && await alice.waitForMessages("lobby", (m) => m.id === id, 1, 300).then(() => true, () => false)
      ) {
        break;
      }
      assert.ok(Date.now() < deadline, "alice did not rejoin within 10 s");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await bob.joinRoom("lobby", "Bob");
    await bob.sendGroupchat("lobby", "welcome back");
    await alice.waitForMessages("lobby", (m) => m.body === "welcome back" && m.nick === "Bob");
  });
});

Deno.test("stop() ends every Prosody process and removes the directory", async () => {
  const prosody = await startProsody();
  assert.notDeepEqual(processesMentioning(prosody.dir), []);
  await prosody.stop();
  assert.deepEqual(processesMentioning(prosody.dir), []);
  await assert.rejects(Deno.stat(prosody.dir), Deno.errors.NotFound);
  await prosody.stop(); // idempotent
});

Deno.test("STARTTLS is offered and the certificate verifies against caFile for localhost", async () => {
  const prosody = await startProsody();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: prosody.c2sPort });
    const encoder = new TextEncoder();
    await conn.write(encoder.encode(streamHeader("jabber:client", "localhost")));
    const features = await readUntil(conn, /<\/stream:features>/);
    assert.match(features, /<starttls xmlns=['"]urn:ietf:params:xml:ns:xmpp-tls['"]/);
    await conn.write(encoder.encode("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
    await readUntil(conn, /<proceed/);
    const tls = await Deno.startTls(conn, {
      hostname: "localhost",
      caCerts: [await Deno.readTextFile(prosody.caFile)],
    });
    await tls.handshake();
    await tls.write(encoder.encode(streamHeader("jabber:client", "localhost")));
    assert.match(await readUntil(tls, /<\/stream:features>/), /SCRAM-SHA-1/);
    tls.close();
  } finally {
    await prosody.stop();
  }
});

Deno.test("the bridge component authenticates with componentSecret on componentPort", async () => {
  const prosody = await startProsody({ componentSecret: "s3cret" });
  try {
    assert.equal(prosody.componentService, `xmpp://127.0.0.1:${prosody.componentPort}`);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: prosody.componentPort });
    await conn.write(
      new TextEncoder().encode(streamHeader("jabber:component:accept", prosody.componentDomain)),
    );
    const header = await readUntil(conn, /<stream:stream [^>]*>/);
    const streamId = header.match(/\sid=['"]([^'"]+)['"]/)?.[1];
    assert.ok(streamId, header);
    const digest = createHash("sha1").update(streamId + prosody.componentSecret).digest("hex");
    await conn.write(new TextEncoder().encode(`<handshake>${digest}</handshake>`));
    assert.match(await readUntil(conn, /<handshake\s*\/>|<stream:error/), /<handshake\s*\/>/);
    conn.close();
  } finally {
    await prosody.stop();
  }
});

Deno.test("HTTP upload hands out 127.0.0.1 URLs that accept a PUT and serve the file", async () => {
  await withServer(async (prosody, cleanup) => {
    const alice = cleanup(await connectXmppUser(prosody, "alice", "alice-pw"));
    const content = new TextEncoder().encode("hello upload ✓\n");
    const result = await alice.iq(
      xml(
        "iq",
        { type: "get", to: prosody.uploadDomain },
        xml("request", {
          xmlns: "urn:xmpp:http:upload:0",
          filename: "hello.txt",
          size: String(content.length),
          "content-type": "text/plain",
        }),
      ),
    );
    const slot = result.getChild("slot", "urn:xmpp:http:upload:0");
    const put = slot.getChild("put");
    const get: string = slot.getChild("get").attrs.url;
    assert.ok(put.attrs.url.startsWith(`http://127.0.0.1:${prosody.httpPort}/`), put.attrs.url);
    const headers: Record<string, string> = { "content-type": "text/plain" };
    for (const header of put.getChildren("header")) headers[header.attrs.name] = header.getText();
    const upload = await fetch(put.attrs.url, { method: "PUT", body: content, headers });
    await upload.body?.cancel();
    assert.equal(upload.status, 201);
    const download = await fetch(get);
    assert.equal(download.status, 200);
    assert.deepEqual(new Uint8Array(await download.arrayBuffer()), content);
  });
});
