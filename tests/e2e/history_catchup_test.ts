/**
 * A room that keeps no archive (XEP-0313) is caught up from the history it replays at join: the bridge asks for
 * what was said since it last read the room (`<history since=…/>`, XEP-0045 §7.2.15) instead of no history, and hands
 * it on like an archive catch-up: in order, before the live messages held meanwhile, each once.
 */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import type { Element } from "@xmpp/xml";
import { postsMatching, startWorld, type World } from "../helpers/harness.ts";
import { captureLogs } from "../helpers/log_capture.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS_MAM = "urn:xmpp:mam:2";

/** alice created the room, so she owns it: she turns its archive off, and checks that disco no longer offers MAM. */
async function turnArchiveOff(w: World): Promise<void> {
  const field = (name: string, value: string) => xml("field", { var: name }, xml("value", {}, value));
  await w.alice.iq(
    xml(
      "iq",
      { type: "set", to: w.room },
      xml(
        "query",
        { xmlns: "http://jabber.org/protocol/muc#owner" },
        xml(
          "x",
          { xmlns: "jabber:x:data", type: "submit" },
          field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig"),
          field("muc#roomconfig_enablearchiving", "0"),
        ),
      ),
    ),
  );
  const info = await w.alice.iq(
    xml("iq", { type: "get", to: w.room }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })),
  );
  const features = info.getChild("query")?.getChildren("feature").map((f: Element) => f.attrs.var) ?? [];
  assert.ok(!features.includes(NS_MAM), `the room still offers MAM: ${features.join(", ")}`);
}

/** The `<x/>` of the bridge's join requests to the room, in order. */
function bridgeJoins(w: World): string[] {
  return w.prosody.mucJoinRequests().filter((j) => j.from.startsWith("bridge@localhost/")).map((j) => j.x);
}

Deno.test(
  "messages said in a room without an archive while the bridge is down come from its join history, in order, once",
  opts,
  async () => {
    const w = await startWorld();
    try {
      await turnArchiveOff(w);
      const first = await w.startBridge();
      await w.alice.sendGroupchat(w.room, "before the restart");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "before the restart", 1);
      await first.stop();
      assert.match(
        bridgeJoins(w).at(-1) ?? "",
        /<history\b[^>]*\bmaxstanzas=['"]0['"]/,
        "a room never read is joined without history",
      );

      const missed = Array.from({ length: 10 }, (_, i) => `said in the room while down ${i}`);
      for (const text of missed) await w.alice.sendGroupchat(w.room, text);

      await captureLogs(async (records) => {
        await w.startBridge();
        // Said while the catch-up may still run: it is held, and comes after what was missed.
        await w.alice.sendGroupchat(w.room, "after the restart");
        const got = await postsMatching(
          w.mm,
          w.channel.id,
          (p) => p.message.startsWith("said in the room") || p.message === "after the restart",
          11,
          20_000,
        );
        assert.deepEqual(got.map((p) => p.message), [...missed, "after the restart"]);
        const fetched = records.find((r) => String(r.rawMessage).startsWith("Fetched {count} message(s)"));
        assert.equal(
          fetched?.properties.from,
          "history",
          "the catch-up was not logged as coming from the history",
        );
      });
      assert.match(
        bridgeJoins(w).at(-1) ?? "",
        /<history since=['"][0-9T:-]+Z['"]\/>/,
        "the restart asked for no history",
      );
      const messages = w.mm.posts(w.channel.id).filter((p) => p.user_id === w.mm.bot.id).map((p) =>
        p.message
      );
      assert.equal(messages.filter((m) => m === "before the restart").length, 1, messages.join("\n"));
      assert.equal(new Set(messages).size, messages.length, `a message came twice:\n${messages.join("\n")}`);
      console.log(
        `history catch-up (no MAM): ${missed.length} of ${missed.length} missed messages, in order, 0 doubled`,
      );
    } finally {
      await w.stop();
    }
  },
);

Deno.test(
  "a catch-up from a room's join history skips, and counts in a warning, messages older than BRIDGE_CATCHUP_MAX_AGE",
  opts,
  async () => {
    const w = await startWorld();
    try {
      await turnArchiveOff(w);
      const first = await w.startBridge({ BRIDGE_CATCHUP_MAX_AGE: "4s" });
      await w.alice.sendGroupchat(w.room, "seen");
      await postsMatching(w.mm, w.channel.id, (p) => p.message === "seen", 1);
      await first.stop();

      // The room stamps its history in whole seconds: what is said in a later second than "seen" is told apart.
      await new Promise((r) => setTimeout(r, 1_000 - Date.now() % 1_000));
      for (let i = 0; i < 3; i++) await w.alice.sendGroupchat(w.room, `too old ${i}`);
      await new Promise((r) => setTimeout(r, 5_000));
      await w.alice.sendGroupchat(w.room, "recent enough");

      await captureLogs(async (records) => {
        await w.startBridge({ BRIDGE_CATCHUP_MAX_AGE: "4s" });
        await postsMatching(w.mm, w.channel.id, (p) => p.message === "recent enough", 1, 20_000);
        const skipped = records.find((r) => String(r.rawMessage).startsWith("Skipped {count} message(s)"));
        assert.ok(skipped, "no warning counted the skipped messages");
        assert.equal(skipped.properties.count, 3);
        assert.equal(skipped.level, "warning");
      });
      assert.equal(w.mm.posts(w.channel.id).filter((p) => p.message.includes("too old")).length, 0);
    } finally {
      await w.stop();
    }
  },
);
