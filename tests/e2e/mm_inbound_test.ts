/**
 * The Mattermost connector's inbound side against the stand-in: websocket gaps, catch-up, health and backoff.
 * The core is replaced by a recording context; the bus's duplicate dropping is covered end to end elsewhere, so
 * these tests compare post ids, not counts of deliveries.
 */
import assert from "node:assert/strict";
import type { BridgeContext } from "../../src/core/bridge.ts";
import type { BridgeEvent } from "../../src/core/events.ts";
import type { BridgeMessage } from "../../src/core/message.ts";
import { MattermostBridge, type MattermostBridgeOptions } from "../../src/mattermost/connector.ts";
import { quietContext } from "../helpers/connector_kit.ts";
import { waitFor } from "../helpers/harness.ts";
import { captureLogs } from "../helpers/log_capture.ts";
import { MALFORMED_EVENTS, RAW_MALFORMED_FRAMES } from "../helpers/malformed_frames.ts";
import { type MattermostStandIn, type StandInOptions, startMattermostStandIn } from "../mm_server/server.ts";

/** What a test drives: the stand-in, a mapped channel with bob in it, and the connector with what it received. */
interface Rig {
  mm: MattermostStandIn;
  bridge: MattermostBridge;
  channel: { id: string };
  bob: { id: string };
  received: BridgeMessage[];
  /** Texts received, each once, in first-arrival order. */
  texts(): string[];
  /** Replaces the context's `mappedChannels` (default: the one channel). */
  mapped: () => Promise<string[]>;
  /** Replaces the context's `receive` (default: record). */
  onReceive: (m: BridgeMessage) => void;
}

const FAST = { initialMs: 20, maxMs: 200, jitterMs: 20 };

async function withRig(
  opts: { standIn?: StandInOptions; bridge?: Partial<MattermostBridgeOptions>; before?: (r: Rig) => void },
  body: (r: Rig) => Promise<void>,
): Promise<void> {
  const mm = await startMattermostStandIn(opts.standIn);
  const bob = mm.createUser("bob");
  const channel = mm.createChannel("bridged");
  mm.addMember(channel.id, bob.id);
  const received: BridgeMessage[] = [];
  const bridge = new MattermostBridge({
    url: mm.url,
    token: mm.bot.token,
    team: mm.team.name,
    display: { mode: "prefix", nameFormat: "{nick}" },
    reconnect: FAST,
    catchUpRetry: { initialMs: 50, maxMs: 200 },
    ...opts.bridge,
  });
  const rig: Rig = {
    mm,
    bridge,
    channel,
    bob,
    received,
    texts: () => [...new Map(received.map((m) => [m.ids[0], m.text])).values()],
    mapped: () => Promise.resolve([channel.id]),
    onReceive: (m) => received.push(m),
  };
  // A bridge that never ran before: no stored positions.
  const ctx: BridgeContext = quietContext({
    // The connector parses posts into messages only, for now.
    receive: (e) => e.kind === "message" ? rig.onReceive(e) : assert.fail(`a ${e.kind} event`),
    mappedChannels: () => rig.mapped(),
  });
  opts.before?.(rig);
  try {
    await bridge.start(ctx);
    await bridge.joinChannel(channel.id);
    await body(rig);
  } finally {
    await bridge.stop();
    await mm.close();
  }
}

/** Waits until every text in `want` was received. */
async function received(r: Rig, want: string[], timeoutMs = 10_000): Promise<void> {
  const missing = () => want.filter((t) => !r.texts().includes(t));
  await waitFor(() => missing().length === 0, `${want.length} post(s)`, timeoutMs).catch((err) => {
    const lacking = missing();
    throw new Error(`${err.message}; ${lacking.length} missing, e.g. ${JSON.stringify(lacking.slice(0, 5))}`);
  });
}

/** Forgets every websocket session (as a restart does), posts `texts` while the bot is away, lets it back. */
async function gap(r: Rig, texts: string[]): Promise<void> {
  r.mm.refuseWebsockets(true);
  r.mm.restartWebsocketSessions();
  await waitFor(() => !r.bridge.health().connected, "the websocket to drop");
  for (const text of texts) await r.mm.postAs(r.bob.id, r.channel.id, text);
  r.mm.refuseWebsockets(false);
}

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "a catch-up whose mappedChannels() rejects stalls nothing: live posts flow and the catch-up is retried",
  opts,
  async () => {
    await withRig({}, async (r) => {
      await r.mm.postAs(r.bob.id, r.channel.id, "warm-up");
      await received(r, ["warm-up"]);
      let calls = 0;
      r.mapped = () =>
        ++calls === 1 ? Promise.reject(new Error("store unavailable")) : Promise.resolve([r.channel.id]);
      await gap(r, ["during the gap"]);
      await waitFor(() => r.mm.websocketCount(r.mm.bot.id) === 1, "reconnect");
      await r.mm.postAs(r.bob.id, r.channel.id, "live after the failed catch-up");
      await received(r, ["live after the failed catch-up", "during the gap"]);
      assert.ok(calls >= 2, "the catch-up was retried");
    });
  },
);

Deno.test("a post whose handling throws does not stop the posts after it", opts, async () => {
  await withRig({}, async (r) => {
    r.onReceive = (m) => {
      if (m.text === "poison") throw new Error("the core choked");
      r.received.push(m);
    };
    await r.mm.postAs(r.bob.id, r.channel.id, "poison");
    await r.mm.postAs(r.bob.id, r.channel.id, "after the poison");
    await received(r, ["after the poison"]);
  });
});

Deno.test("after a lossless resume (no hello) the connection is reported up again", opts, async () => {
  await withRig({}, async (r) => {
    assert.equal(r.bridge.health().connected, true);
    r.mm.refuseWebsockets(true);
    r.mm.dropWebsockets();
    await waitFor(() => !r.bridge.health().connected, "health to report the drop");
    r.mm.refuseWebsockets(false);
    await waitFor(() => r.bridge.health().connected, "health to report the resumed connection");
    await r.mm.postAs(r.bob.id, r.channel.id, "after the resume");
    await received(r, ["after the resume"]);
  });
});

Deno.test(
  "posts lost while a resume was handed its connection back are caught up over REST",
  opts,
  async () => {
    await withRig({}, async (r) => {
      await r.mm.postAs(r.bob.id, r.channel.id, "warm-up");
      await received(r, ["warm-up"]);
      r.mm.beforeNextWebsocketResume(() => {
        r.mm.postAs(r.bob.id, r.channel.id, "in the hand-over window");
      });
      r.mm.dropWebsockets();
      await r.mm.postAs(r.bob.id, r.channel.id, "queued while away");
      await received(r, ["queued while away", "in the hand-over window"]);
    });
  },
);

Deno.test("posts made after the reaper forgot the connection are caught up", opts, async () => {
  await withRig({}, async (r) => {
    r.mm.refuseWebsockets(true);
    r.mm.dropWebsockets();
    await waitFor(() => !r.bridge.health().connected, "the websocket to drop");
    r.mm.runWebsocketReaper(Date.now() + 6 * 60_000);
    await r.mm.postAs(r.bob.id, r.channel.id, "after the reaper");
    r.mm.refuseWebsockets(false);
    await received(r, ["after the reaper"]);
  });
});

Deno.test("a gap of more than 1000 posts is caught up completely and in order", opts, async () => {
  await withRig({}, async (r) => {
    const texts = Array.from({ length: 1_200 }, (_, i) => `gap post ${i}`);
    await gap(r, texts);
    await received(r, texts, 30_000);
    assert.deepEqual(r.texts(), texts);
  });
});

Deno.test(
  "the catch-up starts from the server's time, not the bridge's clock, and skips posts from before the join",
  opts,
  async () => {
    // The server's clock is an hour behind the bridge's: a cursor from the bridge's clock would be an hour ahead.
    const standIn = { clockOffsetMs: -3_600_000 };
    await withRig(
      { standIn, before: (r) => void r.mm.postAs(r.bob.id, r.channel.id, "before the join") },
      async (r) => {
        await gap(r, ["during the gap"]);
        await received(r, ["during the gap"]);
        assert.deepEqual(r.texts(), ["during the gap"]);
      },
    );
  },
);

Deno.test(
  "a post dated ahead by a skewed clock does not hide later posts from the catch-up",
  opts,
  async () => {
    await withRig({}, async (r) => {
      const real = await r.mm.postAs(r.bob.id, r.channel.id, "dated ahead");
      // The same post as another cluster node with a fast clock might have stamped it.
      r.mm.sendWebsocketEvent(r.mm.bot.id, "posted", {
        post: JSON.stringify({
          ...real,
          id: "aheadpost00000000000000000",
          create_at: real.create_at + 20_000,
        }),
      });
      await waitFor(
        () => r.received.some((m) => m.ids[0] === "aheadpost00000000000000000"),
        "the skewed post",
      );
      await gap(r, ["during the gap"]);
      await received(r, ["during the gap"]);
    });
  },
);

Deno.test(
  "a posted event whose create_at is not a number is bridged but does not poison the catch-up",
  opts,
  async () => {
    await withRig({}, async (r) => {
      const post = {
        id: "badtimepost000000000000000",
        channel_id: r.channel.id,
        user_id: r.bob.id,
        message: "bad time",
        type: "",
        create_at: "abc",
        update_at: "abc",
      };
      r.mm.sendWebsocketEvent(r.mm.bot.id, "posted", { post: JSON.stringify(post) });
      await received(r, ["bad time"]);
      const got = r.received.find((m) => m.text === "bad time")!;
      assert.ok(Number.isFinite(got.timestamp));
      await gap(r, ["during the gap"]);
      await received(r, ["during the gap"]);
    });
  },
);

Deno.test("after a long outage the websocket is back within the capped backoff", opts, async () => {
  await withRig({}, async (r) => {
    r.mm.refuseWebsockets(true);
    r.mm.dropWebsockets();
    // Uncapped, the client waits min × failures² (here 20 ms × 400 = 8 s by the 20th failure, growing to 5 min).
    await waitFor(() => r.mm.refusedWebsockets >= 20, "20 refused reconnects", 15_000);
    r.mm.refuseWebsockets(false);
    await waitFor(() => r.bridge.health().connected, "the websocket back", 3_000);
  });
});

Deno.test(
  "malformed websocket frames are skipped without a crash, and the next real post is bridged",
  opts,
  async () => {
    await withRig({}, async (r) => {
      const bot = r.mm.bot.id;
      for (const frame of RAW_MALFORMED_FRAMES) assert.equal(r.mm.sendRawWebsocketFrame(bot, frame), 1);
      for (const [event, data] of MALFORMED_EVENTS) r.mm.sendWebsocketEvent(bot, event, data);
      await r.mm.postAs(r.bob.id, r.channel.id, "real post after the garbage");
      await received(r, ["real post after the garbage"]);
      assert.deepEqual(r.texts(), ["real post after the garbage"]);
      assert.equal(r.bridge.health().connected, true);
    });
  },
);

Deno.test(
  "posts made while the bridge was down whose fetch fails are retried on the catch-up backoff and then bridged",
  opts,
  async () => {
    const mm = await startMattermostStandIn();
    const bob = mm.createUser("bob");
    const channel = mm.createChannel("secret", { type: "P" });
    mm.addMember(channel.id, bob.id);
    mm.addMember(channel.id, mm.bot.id);
    const early = await mm.postAs(bob.id, channel.id, "said while the bridge was down");
    // The stand-in's clock runs ahead within a millisecond, and the bridge, which cannot read the channel at
    // join, takes its own clock as the newest post: let it pass the post first.
    await waitFor(() => Date.now() > early.create_at, "the clock to pass the post");
    const retry = { initialMs: 50, maxMs: 200 };
    const bridge = new MattermostBridge({
      url: mm.url,
      token: mm.bot.token,
      team: mm.team.name,
      display: { mode: "prefix", nameFormat: "{nick}" },
      reconnect: FAST,
      catchUpRetry: retry,
    });
    const received: BridgeMessage[] = [];
    const ctx: BridgeContext = quietContext({
      receive: (e: BridgeEvent) => e.kind === "message" ? received.push(e) : assert.fail(`a ${e.kind} event`),
      mappedChannels: () => Promise.resolve([channel.id]),
      // Read up to long ago; the bot then loses the private channel, so reading what it got since fails (403).
      loadCursor: () => {
        mm.removeMember(channel.id, mm.bot.id);
        return Promise.resolve(1);
      },
    });
    try {
      await captureLogs(async (records) => {
        await bridge.start(ctx);
        await bridge.joinChannel(channel.id);
        const failed = () => records.find((r) => String(r.rawMessage).startsWith("Could not fetch what"));
        await waitFor(() => failed() !== undefined, "the failed fetch to be logged");
        assert.equal(
          failed()!.properties.waitMs,
          retry.initialMs,
          "the first retry waits catchUpRetry.initialMs",
        );
        mm.addMember(channel.id, mm.bot.id);
        await waitFor(() => received.length > 0, "the post from while the bridge was down");
        assert.deepEqual(received.map((m) => m.text), ["said while the bridge was down"]);
      });
    } finally {
      await bridge.stop();
      await mm.close();
    }
  },
);

Deno.test("stop() ends a REST call's wait on a 429 at once: no attempt follows the stop", opts, async () => {
  await withRig({}, async (r) => {
    const carol = r.mm.createUser("carol");
    r.mm.addMember(r.channel.id, carol.id);
    // One request per 10 s: bob's look-up spends it, carol's gets 429 with Retry-After 10 and waits on the inbound
    // queue, which stop() awaits.
    r.mm.setRateLimit({ perSecond: 0.1, burst: 0 });
    await r.mm.postAs(r.bob.id, r.channel.id, "spends the request");
    await r.mm.postAs(carol.id, r.channel.id, "looked up while rate-limited");
    const carolLookups = () => r.mm.requestLog.filter((e) => e.path === `/api/v4/users/${carol.id}`);
    await waitFor(() => carolLookups().some((e) => e.status === 429), "carol's look-up to be rate-limited");
    await r.bridge.stop();
    // Without the abort, the look-up is tried again once the 10 s are over (and then succeeds), before stop() ends.
    assert.deepEqual(carolLookups().map((e) => e.status), [429]);
    // The post is still handed on, under the user id the failed look-up left.
    assert.ok(r.texts().includes("looked up while rate-limited"));
  });
});
