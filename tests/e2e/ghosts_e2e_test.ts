import assert from "node:assert/strict";
import { createXmppClient } from "../../src/xmpp/session/client.ts";
import {
  componentEnv,
  PASSWORD,
  postsMatching,
  sharedWorlds,
  startWorld,
  waitFor,
  type World,
} from "../helpers/harness.ts";
import { redactingFormatter, setupLogging, stopLogging } from "../../src/log.ts";
import { SecretBox } from "../../src/core/secretbox.ts";
import { Store } from "../../src/core/store.ts";
import type { IbrGhosts } from "../../src/xmpp/intents/ibr_ghosts.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** One Prosody for the tests that need no other configuration; each test has its own room. */
const worlds = sharedWorlds("ghosts");

/**
 * A world on the file's Prosody for `body`; the ghost accounts its bridge registered are deleted afterwards, so that
 * the next test's bridge registers them afresh, as on a Prosody of its own.
 */
async function inWorld(body: (w: World) => Promise<void>): Promise<void> {
  let world: World | undefined;
  try {
    await worlds.run((w) => body(world = w));
  } finally {
    if (world) await forgetGhosts(world);
  }
}

/** Deletes the accounts of bob's and carol's ghosts, where they are left, from the file's Prosody. */
async function forgetGhosts(w: World): Promise<void> {
  for (const ghost of ["mm_bob", "mm_carol"]) await w.prosody.unregister(ghost).catch(() => {});
}
const SECRET_KEY = "a-long-random-key-for-the-tests-0123456789";

/** Logs in as `local`@localhost with `password`; resolves to the error condition, or "ok". */
async function tryLogin(w: World, local: string, password: string): Promise<string> {
  const client = createXmppClient({
    service: w.prosody.service,
    domain: "localhost",
    username: local,
    password,
    resource: "probe",
    tls: { ca: await Deno.readTextFile(w.prosody.caFile) },
  });
  client.reconnect.stop();
  client.on("error", () => {});
  try {
    await client.start();
    return "ok";
  } catch (err) {
    return (err as { condition?: string }).condition ?? String(err);
  } finally {
    await client.stop().catch(() => {});
  }
}

async function deactivate(w: World, userId: string) {
  const res = await fetch(`${w.mm.url}/api/v4/users/${userId}/active`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${w.mm.admin.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ active: false }),
  });
  assert.equal(res.status, 200, await res.text());
}

Deno.test(
  "ibr: Mattermost users speak as their own registered ghosts, both ways, without echo",
  opts,
  async () => {
    await inWorld(async (w) => {
      const bridge = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr", BRIDGE_SECRET_KEY: SECRET_KEY });
      await w.mm.postAs(w.bob.id, w.channel.id, "hello as myself 👋");
      const [msg] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
      assert.equal(msg.body, "hello as myself 👋", "no relay prefix");
      assert.ok(msg.originId);

      const ghost = await bridge.store.getGhost("mattermost", w.bob.id);
      assert.equal(ghost?.jid, "mm_bob@localhost");
      assert.equal(ghost?.password.alg, "aes-256-gcm", "the password is stored encrypted");
      await bridge.manager.bus.drain();
      const link = await bridge.store.findLink("xmpp", w.room, msg.originId);
      assert.deepEqual(link?.refs.xmpp.parts[0].sender, { kind: "ghost", id: "mm_bob@localhost" });

      await w.alice.sendGroupchat(w.room, "hi bob's ghost");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "hi bob's ghost", 1);
      // An echo of bob's message would have reached the bridge before alice's, and been posted before it.
      await bridge.manager.bus.drain();
      assert.equal(
        w.mm.posts(w.channel.id).filter((p) => p.message.includes("hello as myself")).length,
        1,
        "no echo",
      );
      assert.equal(w.alice.messages.filter((m) => m.body?.includes("hi bob's ghost")).length, 1);

      // The ghost's JID is stable: a restart reuses the stored account instead of registering again.
      await bridge.stop();
      const again = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr", BRIDGE_SECRET_KEY: SECRET_KEY });
      await w.mm.postAs(w.bob.id, w.channel.id, "still me");
      await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body === "still me", 1, 15_000);
      assert.equal((await again.store.getGhost("mattermost", w.bob.id))?.jid, "mm_bob@localhost");
    });
  },
);

Deno.test("ibr: an idle ghost disconnects and leaves the room", opts, async () => {
  await inWorld(async (w) => {
    // 0.02 minutes = 1.2 s.
    await w.startBridge({ BRIDGE_GHOST_MODE: "ibr", BRIDGE_GHOST_IDLE_MINUTES: "0.02" });
    await w.mm.postAs(w.bob.id, w.channel.id, "brief visit");
    await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
    const left = new Promise<void>((resolve) => {
      const off = w.alice.onStanza((s) => {
        if (s.is("presence") && s.attrs.from === `${w.room}/bob` && s.attrs.type === "unavailable") {
          off();
          resolve();
        }
      });
    });
    const t0 = Date.now();
    await Promise.race([
      left,
      new Promise((_, reject) => setTimeout(() => reject(new Error("still there")), 8_000)),
    ]);
    assert.ok(Date.now() - t0 >= 500, "not before the idle time");
    // The next message brings the ghost back.
    await w.mm.postAs(w.bob.id, w.channel.id, "back again");
    await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body === "back again", 1, 15_000);
  });
});

Deno.test("ibr: a deactivated user's ghost leaves and cancels its own registration", opts, async () => {
  await inWorld(async (w) => {
    const bridge = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr" });
    await w.mm.postAs(w.bob.id, w.channel.id, "soon gone");
    await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
    const ghost = await bridge.store.getGhost("mattermost", w.bob.id);
    assert.ok(ghost);
    assert.equal(ghost.password.alg, "none");
    assert.equal(await tryLogin(w, "mm_bob", ghost.password.data), "ok");

    await deactivate(w, w.bob.id);
    await waitFor(
      async () => (await bridge.store.getGhost("mattermost", w.bob.id)) === null,
      "the ghost to be retired",
      10_000,
    );
    assert.equal(await tryLogin(w, "mm_bob", ghost.password.data), "not-authorized", "the account is gone");
    assert.equal(await tryLogin(w, "bridge", PASSWORD), "ok", "the bridge's own account is untouched");
  });
});

Deno.test("ibr: without in-band registration the bridge falls back to relay", opts, async () => {
  const w = await startWorld({ prosody: { allowRegistration: false } });
  try {
    await w.startBridge({ BRIDGE_GHOST_MODE: "ibr" });
    await w.mm.postAs(w.bob.id, w.channel.id, "relayed instead");
    const [msg] = await w.alice.waitForMessages(
      w.room,
      (m) => m.body?.endsWith("relayed instead") ?? false,
      1,
      15_000,
    );
    assert.equal(msg.nick, "bridge");
    assert.equal(msg.body, "<bob> relayed instead");
  } finally {
    await w.stop();
  }
});

Deno.test(
  "ibr: a rate-limited registration is relayed meanwhile and retried until it succeeds",
  opts,
  async () => {
    const w = await startWorld({ prosody: { registrationThrottleSeconds: 3 } });
    try {
      const carol = w.mm.createUser("carol");
      w.mm.addMember(w.channel.id, carol.id);
      const bridge = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr" }, { ghostRegistrationRetryMs: 1_000 });
      await w.mm.postAs(w.bob.id, w.channel.id, "first user");
      await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
      // carol's registration comes within the throttle window: relayed, not lost.
      await w.mm.postAs(carol.id, w.channel.id, "second user");
      const [relayed] = await w.alice.waitForMessages(
        w.room,
        (m) => m.body?.endsWith("second user") ?? false,
        1,
        15_000,
      );
      assert.equal(relayed.body, "<carol> second user");
      // Later the retry registers carol, and she speaks as herself.
      await waitFor(
        async () => (await bridge.store.getGhost("mattermost", carol.id)) !== null,
        "carol's registration",
        20_000,
      );
      await w.mm.postAs(carol.id, w.channel.id, "am I me yet?");
      await w.alice.waitForMessages(
        w.room,
        (m) => m.nick === "carol" && m.body === "am I me yet?",
        1,
        15_000,
      );
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "component: Mattermost users are puppets of the component, both ways, without echo",
  opts,
  async () => {
    await inWorld(async (w) => {
      const bridge = await w.startBridge({
        ...componentEnv(w.prosody),
      });
      await w.mm.postAs(w.bob.id, w.channel.id, "puppet speaking");
      const [msg] = await w.alice.waitForMessages(w.room, (m) => m.nick === "bob", 1, 15_000);
      assert.equal(msg.body, "puppet speaking");
      await w.alice.sendGroupchat(w.room, "hello puppet");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "hello puppet", 1);
      // An echo of the puppet's message would have reached the bridge before alice's, and been posted before it.
      await bridge.manager.bus.drain();
      assert.equal(
        w.mm.posts(w.channel.id).filter((p) => p.message.includes("puppet speaking")).length,
        1,
        "no echo",
      );
      const link = await bridge.store.findLink("xmpp", w.room, msg.stanzaId!);
      assert.ok(link, "the puppet's message is in the id map by its stanza-id");
      assert.deepEqual(link.refs.xmpp.parts, [{
        messageId: msg.originId,
        originId: msg.originId,
        stanzaId: msg.stanzaId,
        sender: { kind: "puppet", id: `bob@${w.prosody.componentDomain}` },
      }]);
    });
  },
);

/** Changes `userId`'s nickname through the REST API, as a profile edit in the web app does. */
async function editProfile(w: World, userId: string, token: string, nickname: string) {
  const res = await fetch(`${w.mm.url}/api/v4/users/${userId}/patch`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ nickname }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** Decodes unpadded base64url. */
function fromBase64Url(s: string): Uint8Array {
  return Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
}

Deno.test(
  "ibr: each ghost gets its own random 32-byte password, and none reaches the logs",
  opts,
  async () => {
    const lines: string[] = [];
    const format = redactingFormatter("json", []);
    await setupLogging({ level: "debug", format: "json", sink: (r) => lines.push(format(r)) });
    const w = await worlds.start();
    try {
      const carol = w.mm.createUser("carol");
      w.mm.addMember(w.channel.id, carol.id);
      // No BRIDGE_SECRET_KEY: the store then holds the passwords as they are, for this test to read.
      const bridge = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr" });
      await w.mm.postAs(w.bob.id, w.channel.id, "bob here");
      await w.mm.postAs(carol.id, w.channel.id, "carol here");
      await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" || m.nick === "carol", 2, 20_000);
      await w.alice.sendGroupchat(w.room, "hello both");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "hello both", 1);

      const ghosts = [
        await bridge.store.getGhost("mattermost", w.bob.id),
        await bridge.store.getGhost("mattermost", carol.id),
      ];
      const passwords = ghosts.map((g) => {
        assert.equal(g?.password.alg, "none");
        return g!.password.data;
      });
      assert.notEqual(passwords[0], passwords[1], "each ghost has its own password");
      for (const password of passwords) {
        // 32 random bytes, base64url without padding: 43 characters.
        assert.match(password, /^[A-Za-z0-9_-]{43}$/);
        const bytes = fromBase64Url(password);
        assert.equal(bytes.length, 32);
        // 32 random bytes have about 30 distinct values; a constant or counter-like password has few.
        assert.ok(new Set(bytes).size >= 20, `only ${new Set(bytes).size} distinct bytes in ${password}`);
      }
      assert.equal(await tryLogin(w, "mm_bob", passwords[0]), "ok");
      assert.equal(await tryLogin(w, "mm_carol", passwords[1]), "ok");

      await bridge.stop();
      // The capture saw the whole run, debug included: registration, message text, shutdown.
      assert.ok(
        lines.some((l) => l.includes("Registered ghost") && l.includes("mm_carol@localhost")),
        "registration logged",
      );
      assert.ok(
        lines.some((l) => l.includes('"level":"DEBUG"') && l.includes("hello both")),
        "debug captured",
      );
      for (const password of passwords) {
        const hits = lines.filter((l) => l.includes(password));
        assert.deepEqual(hits, [], "a ghost password appears in the log");
      }
    } finally {
      await w.stop();
      await forgetGhosts(w);
      await stopLogging();
    }
  },
);

Deno.test(
  "ibr: a profile edit leaves the ghost and its account alone; a deactivation retires only that user",
  opts,
  async () => {
    await inWorld(async (w) => {
      const carol = w.mm.createUser("carol");
      w.mm.addMember(w.channel.id, carol.id);
      const bridge = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr" });
      await w.mm.postAs(w.bob.id, w.channel.id, "bob here");
      await w.mm.postAs(carol.id, w.channel.id, "carol here");
      await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" || m.nick === "carol", 2, 20_000);
      const bobGhost = await bridge.store.getGhost("mattermost", w.bob.id);
      assert.ok(bobGhost);

      // bob edits his profile: the server publishes user_updated with delete_at 0.
      await editProfile(w, w.bob.id, w.bob.token, "Bobby");
      // carol is deactivated after it; once her ghost is retired, bob's event has long been handled.
      await deactivate(w, carol.id);
      await waitFor(
        async () => (await bridge.store.getGhost("mattermost", carol.id)) === null,
        "carol's ghost retired",
        15_000,
      );
      assert.equal(await tryLogin(w, "mm_carol", "x"), "not-authorized");

      assert.deepEqual(
        await bridge.store.getGhost("mattermost", w.bob.id),
        bobGhost,
        "bob's ghost record is kept",
      );
      assert.equal(await tryLogin(w, "mm_bob", bobGhost.password.data), "ok", "bob's account still exists");
      await w.mm.postAs(w.bob.id, w.channel.id, "still bob");
      const [msg] = await w.alice.waitForMessages(w.room, (m) => m.body === "still bob", 1, 15_000);
      assert.equal(msg.nick, "bob", "bob still speaks as his ghost");
    });
  },
);

worlds.stopAfterAll();

Deno.test(
  "ibr: a start with 2,000 stored ghosts connects none of them; a ghost connects when its user speaks",
  opts,
  async () => {
    await inWorld(async (w) => {
      // Ghosts of earlier runs, as a busy deployment has them, none with a direct conversation; the first two have
      // their accounts on the server, so that a login of theirs would succeed.
      for (const i of [0, 1]) await w.prosody.register(`mm_stored${i}`, "stored-ghost-password");
      const store = await Store.open(w.kvPath);
      try {
        const password = await (await SecretBox.create(undefined)).seal("stored-ghost-password");
        for (let i = 0; i < 2_000; i++) {
          const ghost = { network: "mattermost", userId: `stored-${i}`, jid: `mm_stored${i}@localhost` };
          assert.ok(await store.createGhost({ ...ghost, password, createdAt: Date.now() }));
        }
      } finally {
        store.close();
      }
      try {
        const bridge = await w.startBridge({ BRIDGE_GHOST_MODE: "ibr" });
        assert.ok(bridge.manager.isReady());
        await w.mm.postAs(w.bob.id, w.channel.id, "only me");
        await w.alice.waitForMessages(w.room, (m) => m.nick === "bob" && m.body === "only me", 1, 15_000);
        const ghosts = (bridge.xmpp as unknown as { opts: { ghosts: IbrGhosts } }).opts.ghosts;
        assert.deepEqual(
          ghosts.liveSessions(),
          [w.bob.id],
          "only the ghost of the user who spoke is connected",
        );
      } finally {
        for (const i of [0, 1]) await w.prosody.unregister(`mm_stored${i}`);
      }
    });
  },
);
