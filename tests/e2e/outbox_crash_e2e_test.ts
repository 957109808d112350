/**
 * A crash between "sent" and "recorded", injected in-process: the room reflected the messages, the id map never
 * heard of them, and the outbox still holds them. The next process must find them in the room's archive and
 * record them instead of sending them again. Real Prosody (with MUC archives), real Deno KV on a temp path.
 */
import assert from "node:assert/strict";
import type { BridgeContext, Dispatched } from "../../src/core/bridge.ts";
import { BridgeManager } from "../../src/core/manager.ts";
import type { BridgeMessage, DirectionalMessage } from "../../src/core/message.ts";
import { Store } from "../../src/core/store.ts";
import { XmppBridge } from "../../src/xmpp/connector.ts";
import { ComponentPuppets } from "../../src/xmpp/intents/puppets.ts";
import { waitFor } from "../helpers/harness.ts";
import { FakeBridge } from "../helpers/fake_bridge.ts";
import { quietContext, xmppConnectorOn } from "../helpers/connector_kit.ts";
import { startProsody } from "../helpers/prosody.ts";
import { connectXmppUser } from "../helpers/xmpp_user.ts";

const PASSWORD = "crash-between-sent-and-recorded-7";
const CHAN = "c0000000000000000000000crash";
const N = 10;
/** The message whose record the crash cuts; it and every later one are sent or queued, none recorded. */
const K = 4;

/** The Mattermost side, played in memory: what its connector hands the core goes through `ctx`. */
class SourceBridge extends FakeBridge {
  ctx?: BridgeContext;
  override start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    return super.start(ctx);
  }
}

function post(i: number): BridgeMessage {
  const id = `post${String(i).padStart(22, "0")}`;
  return {
    kind: "message",
    eventId: id,
    portal: { network: "mattermost", channel: CHAN },
    ids: [id],
    sender: { network: "mattermost", id: "u1", name: "bob" },
    text: `crash test message ${i}`,
    timestamp: Date.now(),
  };
}

/**
 * Runs the crash between sent and recorded with the bridge relaying (`relay`) or speaking through component
 * puppets (`puppets`, whose sessions the restart has not reopened when the archive is read).
 */
async function crashBetweenSentAndRecorded(mode: "relay" | "puppets"): Promise<void> {
  const prosody = await startProsody();
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-outbox-crash-" });
  const path = `${dir}/state.kv`;
  await prosody.register("bridge", PASSWORD);
  await prosody.register("alice", PASSWORD);
  const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test" });
  const room = `crash@${prosody.mucDomain}`;
  const ca = await Deno.readTextFile(prosody.caFile);
  const xmppBridge = () =>
    new XmppBridge({
      jid: "bridge@localhost",
      password: PASSWORD,
      service: prosody.service,
      resource: "test",
      mucNick: "bridge",
      nameFormat: "<{username}> ",
      tls: { ca },
      ghosts: mode === "puppets"
        ? new ComponentPuppets({
          service: prosody.componentService,
          domain: prosody.componentDomain,
          secret: prosody.componentSecret,
        })
        : undefined,
    });
  // How the room shows a message of bob's: relayed with a prefix by the bridge, or said by bob's puppet.
  const nick = mode === "relay" ? "bridge" : "bob";
  const shown = (text: string) => mode === "relay" ? `<bob> ${text}` : text;
  const retry = { initialMs: 100, maxMs: 1_000 };
  let second: { manager: BridgeManager; store: Store } | undefined;
  try {
    await alice.joinRoom(room, "alice");

    // --- the first process ---
    const store1 = await Store.open(path);
    assert.ok(
      (await store1.addMapping({
        channels: { mattermost: CHAN, xmpp: room },
        origin: "command",
        createdAt: 0,
      })).ok,
    );
    const mm1 = new SourceBridge("mattermost");
    const xmpp1 = xmppBridge();
    const manager1 = new BridgeManager(store1, [mm1, xmpp1], { retry });
    await manager1.start();
    await waitFor(
      async () => (await store1.getCursor("xmpp", room)) !== undefined,
      "the room's read position",
    );

    // From the record of message K on, the process is dead: nothing more reaches the KV file or the room.
    let crashed = false;
    const realWrite = store1.writeBatch.bind(store1);
    store1.writeBatch = (writes) => {
      crashed ||= writes.some((w) =>
        w.kind === "deliver" && w.link.refs.mattermost.ids[0] === post(K).ids[0]
      );
      return crashed ? new Promise(() => {}) : realWrite(writes);
    };
    // The burst is accepted (in the outbox) before the first send goes out, as when it comes faster than delivery.
    let accepted!: () => void;
    const allAccepted = new Promise<void>((resolve) => accepted = resolve);
    // The bus writes through dispatch (the connector pipelines), and send goes through it too.
    const realDispatch = xmpp1.dispatch.bind(xmpp1);
    xmpp1.dispatch = async (dm: DirectionalMessage): Promise<Dispatched> => {
      await allAccepted;
      if (crashed) return new Promise(() => {});
      return realDispatch(dm);
    };
    for (let i = 1; i <= N; i++) mm1.ctx!.receive(post(i));
    await waitFor(async () => (await store1.listOutbox()).length === N, "the burst in the outbox");
    accepted();
    await waitFor(() => crashed, "the crash");
    const bridged = (text: string) => alice.messages.filter((m) => m.nick === nick && m.body === shown(text));
    await alice.waitForMessages(room, (m) => m.body === shown(post(K).text), 1, 10_000);
    const sentBeforeCrash = alice.messages.filter((m) => m.nick === nick).length;
    manager1.bus.stop();
    await xmpp1.stop();
    await manager1.cursors.stop();
    store1.close();
    assert.ok(sentBeforeCrash >= K, `${sentBeforeCrash} reflected before the crash`);

    // --- the next process, on the same state file ---
    const store2 = await Store.open(path);
    const left = await store2.listOutbox();
    // K and everything after it at least; an earlier record may have shared K's commit and died with it.
    assert.ok(left.length >= N - K + 1, `${left.length} unrecorded deliveries are in the outbox`);
    const mm2 = new SourceBridge("mattermost");
    const manager2 = new BridgeManager(store2, [mm2, xmppBridge()], { retry });
    second = { manager: manager2, store: store2 };
    await manager2.start();
    await waitFor(async () => (await store2.listOutbox()).length === 0, "the outbox to empty", 20_000);
    await manager2.bus.drain();
    // Anything sent twice would have been reflected by now; give a late one time anyway.
    await alice.waitForMessages(room, (m) => m.body === shown(post(N).text), 1, 10_000);
    await new Promise((r) => setTimeout(r, 1_000));

    const counts = Array.from({ length: N }, (_, i) => bridged(post(i + 1).text).length);
    const lost = counts.filter((c) => c === 0).length;
    const duplicated = counts.reduce((n, c) => n + Math.max(0, c - 1), 0);
    console.log(
      `crash between sent and recorded (${mode}): ${sentBeforeCrash} of ${N} reflected before the crash, ` +
        `${left.length} in the outbox after it; lost=${lost} duplicated=${duplicated}`,
    );
    assert.deepEqual({ lost, duplicated }, { lost: 0, duplicated: 0 });
    const order = alice.messages.filter((m) => m.nick === nick).map((m) => m.body);
    assert.deepEqual(order, Array.from({ length: N }, (_, i) => shown(post(i + 1).text)), "in order");
    // Every message is in the id map by the stanza-id the room gave its one reflection, and nothing echoed back.
    for (let i = 1; i <= N; i++) {
      const [reflection] = bridged(post(i).text);
      const link = await store2.findLink("xmpp", room, reflection.stanzaId!);
      assert.equal(link?.refs.mattermost.ids[0], post(i).ids[0], `message ${i} is recorded`);
      assert.equal(link?.refs.xmpp.parts[0].stanzaId, reflection.stanzaId);
    }
    assert.equal(mm1.sent.length + mm2.sent.length, 0, "no echo reached Mattermost");
  } finally {
    await second?.manager.stop();
    second?.store.close();
    await alice.stop();
    await prosody.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a crash between sent and recorded: the restart finds the reflections in the room's archive, 0 lost, 0 doubled", () =>
  crashBetweenSentAndRecorded("relay"));

Deno.test("a crash between sent and recorded with component puppets: found in the archive too, 0 lost, 0 doubled", () =>
  crashBetweenSentAndRecorded("puppets"));

Deno.test("a retry of a delivery whose reflection came after its waiter gave up reports it instead of sending again", async () => {
  const prosody = await startProsody();
  await prosody.register("bridge", PASSWORD);
  await prosody.register("alice", PASSWORD);
  const alice = await connectXmppUser(prosody, "alice", PASSWORD, { resource: "test" });
  const room = `late@${prosody.mucDomain}`;
  // The waiter gives up before the room can reflect: the reflection then comes late.
  const bridge = await xmppConnectorOn(prosody, PASSWORD, { reflectionTimeoutMs: 1 });
  const aliases: string[] = [];
  const ctx = quietContext({
    addMessageAlias: (_room, knownId) => {
      aliases.push(knownId);
      return Promise.resolve();
    },
  });
  try {
    await alice.joinRoom(room, "alice");
    await bridge.start(ctx);
    await waitFor(() => bridge.health().connected, "the session");
    await bridge.joinChannel(room);
    const dm: DirectionalMessage = {
      source: "mattermost",
      target: "xmpp",
      targetChannel: room,
      message: post(1),
      deliveryId: "late-delivery-id-000001",
    };
    await assert.rejects(bridge.send(dm), /did not reflect/);
    await waitFor(() => aliases.includes(dm.deliveryId), "the late reflection");
    // The bus retries the delivery, with the same id.
    const sent = await bridge.send(dm);
    const [reflection] = await alice.waitForMessages(room, (m) => m.nick === "bridge", 1, 5_000);
    assert.deepEqual(sent.parts, [{
      messageId: dm.deliveryId,
      originId: dm.deliveryId,
      stanzaId: reflection.stanzaId,
      sender: { kind: "relay" },
    }]);
    await alice.expectSilence(room, (m) => m.nick === "bridge" && m !== reflection, 1_000);
  } finally {
    await bridge.stop();
    await alice.stop();
    await prosody.stop();
  }
});
