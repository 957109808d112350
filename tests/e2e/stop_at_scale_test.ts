/**
 * Stopping with many puppets: SIGTERM to a bridge whose 500 component puppets are in two rooms ends with exit code
 * 0, nothing uncaught, and every puppet gone from every room, as a human occupant sees it, within 5 s.
 *
 * The rooms hold 250 puppets each: each departure costs the server one presence per occupant still there, so how
 * long one crowded room takes to empty is up to the server (quadratic in its size), not the bridge.
 */
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { spawnReadyBridge } from "../helpers/bridge_process.ts";
import { componentEnv, startWorld, waitFor } from "../helpers/harness.ts";

const ROOMS = 2;
const PER_ROOM = 250;

Deno.test({
  name: `SIGTERM with ${
    ROOMS * PER_ROOM
  } puppets in ${ROOMS} rooms: exit 0, nothing uncaught, every room empty in 5 s`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const w = await startWorld({ room: "scale0" });
    try {
      const pairs = [{ channel: w.channel, room: w.room }];
      for (let r = 1; r < ROOMS; r++) {
        const channel = w.mm.createChannel(`scale-${r}`);
        w.mm.addMember(channel.id, w.mm.bot.id);
        pairs.push({ channel, room: `scale${r}@${w.prosody.mucDomain}` });
        await w.alice.joinRoom(pairs[r].room, "alice");
      }
      // Who alice sees in each room, by occupant JID.
      const present = new Set<string>();
      w.alice.onStanza((s: Element) => {
        const from = String(s.attrs.from ?? "");
        if (!s.is("presence") || !pairs.some((p) => from.startsWith(`${p.room}/`))) return;
        if (s.attrs.type === "unavailable") present.delete(from);
        else present.add(from);
      });
      const puppetsIn = () => [...present].filter((jid) => !/\/(alice|bridge)$/.test(jid)).length;

      const env = w.env({
        BRIDGE_MAPPINGS: pairs.map((p) => `${w.mm.team.name}/${p.channel.name}=${p.room}`).join(","),
        ...componentEnv(w.prosody),
      });
      const bridge = await spawnReadyBridge(env, w.httpPort);
      try {
        for (const [r, { channel }] of pairs.entries()) {
          for (let i = 0; i < PER_ROOM; i++) {
            const user = w.mm.createUser(`user${r}x${i}`);
            w.mm.addMember(channel.id, user.id);
            await w.mm.postAs(user.id, channel.id, `hello from ${r}/${i}`);
          }
        }
        await waitFor(
          () => puppetsIn() === ROOMS * PER_ROOM,
          `${ROOMS * PER_ROOM} puppets in the rooms`,
          120_000,
        )
          .catch((err) => {
            throw new Error(`${err.message}: alice sees ${puppetsIn()}`);
          });
        const signalled = performance.now();
        const code = await bridge.stop();
        await waitFor(() => puppetsIn() === 0, "every puppet gone", 5_000).catch((err) => {
          throw new Error(`${err.message}: ${puppetsIn()} still there 5 s after SIGTERM`);
        });
        const emptied = performance.now() - signalled;
        console.log(
          `stopped with exit code ${code}; every room empty ${Math.round(emptied)} ms after SIGTERM`,
        );
        assert.equal(code, 0, bridge.log().slice(-2000));
        assert.doesNotMatch(bridge.log(), /Uncaught/);
        assert.ok(emptied <= 5_000, `${Math.round(emptied)} ms`);
      } finally {
        await bridge.stop();
      }
    } finally {
      await w.stop();
    }
  },
});
