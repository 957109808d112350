/** Mentions across the XMPP edge: ghosts' nicks in from XMPP, occupants' nicks out to XMPP. */
import assert from "node:assert/strict";
import { xml } from "@xmpp/client-core";
import { ghostMentions } from "../../src/xmpp/mentions.ts";
import { Occupants } from "../../src/xmpp/muc/occupants.ts";

const GHOSTS = [{ nick: "bob", username: "bob" }, { nick: "Bob Smith", username: "bsmith" }, {
  nick: "will",
  username: "will.k",
}];

/** [XMPP text, Mattermost text]. */
const CASES: Array<[string, string]> = [
  ["bob: lunch?", "@bob: lunch?"],
  ["Bob Smith, see this", "@bsmith, see this"],
  ["bob smith: case does not matter", "@bsmith: case does not matter"],
  ["first line\nwill: second line", "first line\n@will.k: second line"],
  ["ask @will, or @Bob Smith.", "ask @will.k, or @bsmith."],
  // Named in passing, a nick that is an ordinary word notifies nobody.
  ["I will ask bob later", "I will ask bob later"],
  ["bobby: not bob", "bobby: not bob"],
  ["bob:x is no address", "bob:x is no address"],
  ["mail bob@example.org", "mail bob@example.org"],
  ["@bobby is someone else", "@bobby is someone else"],
];

Deno.test("an XMPP message addressing a ghost by nick mentions its Mattermost user", () => {
  for (const [xmpp, mm] of CASES) assert.equal(ghostMentions(xmpp, GHOSTS), mm, JSON.stringify(xmpp));
  assert.equal(ghostMentions("bob: hi", []), "bob: hi");
});

Deno.test("occupants follow the room's presence: arrivals, departures, nick changes", () => {
  const room = "hall@conference.localhost";
  const occupants = new Occupants();
  const presence = (nick: string, type?: string) =>
    occupants.handlePresence(xml("presence", { from: `${room}/${nick}`, ...(type ? { type } : {}) }));
  presence("Alice");
  presence("carol");
  presence("carol", "unavailable");
  presence("dave", "error");
  assert.deepEqual(occupants.nicks(room), ["Alice"]);
  assert.equal(occupants.find(room, "alice"), "Alice", "a lowercase username names a nick in any case");
  assert.equal(occupants.find(room, "carol"), undefined);
  presence("ALICE");
  assert.equal(occupants.find(room, "alice"), undefined, "ambiguous: two nicks differ only in case");
  assert.equal(occupants.find(room, "ALICE"), "ALICE");
  occupants.forget(room);
  assert.deepEqual(occupants.nicks(room), [], "a room the bridge left has no occupants for it");
  presence("Alice");
  occupants.clear();
  assert.deepEqual(occupants.nicks(room), []);
});
