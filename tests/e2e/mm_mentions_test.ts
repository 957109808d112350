import assert from "node:assert/strict";
import { neutralizeChannelMentions } from "../../src/mattermost/mentions.ts";
import { BRIDGE_MARKER_PROP, renderPosts } from "../../src/mattermost/post.ts";
import { explicitMentions } from "../mm_server/mentions.ts";

/** Whether Mattermost's mention parser (as ported in the stand-in) counts a channel-wide mention. */
function notifiesChannel(message: string): boolean {
  const r = explicitMentions(message);
  return r.channel || r.all || r.here;
}

/** What a reader sees: the word joiner is invisible. */
function visible(text: string): string {
  return text.replaceAll("\u2060", "");
}

const NOTIFYING = [
  "@channel",
  "@all",
  "@here",
  "hey @channel, lunch?",
  "@channel.",
  "@ALL!",
  "(@Here)",
  "\\@channel",
  "a.@channel",
  "_@all_",
  "[@here](https://example.org)",
  "@channe&#108;",
  "@al&#x6C; at once",
  "> quoted @channel",
  "- item @here",
  "**@channel**",
  "*@all*",
  "@channel--",
  "line one\n@here line two",
];

Deno.test("every phrasing that notifies the channel is counted by the faithful parser before defusing", () => {
  for (const text of NOTIFYING) {
    assert.ok(notifiesChannel(text), `expected ${JSON.stringify(text)} to notify`);
  }
});

Deno.test("defused text notifies nobody and reads exactly as typed", () => {
  for (const text of NOTIFYING) {
    const defused = neutralizeChannelMentions(text);
    assert.ok(!notifiesChannel(defused), `${JSON.stringify(defused)} still notifies`);
    assert.equal(visible(defused), text);
  }
});

Deno.test("longer words and other mentions are left byte for byte", () => {
  for (
    const text of ["@channels are fun", "@allison and @hereford", "@bob, @carol.", "channel all here", ""]
  ) {
    assert.equal(neutralizeChannelMentions(text), text);
  }
  // An "@here" inside a word is no mention, but a joiner there is invisible and may follow an autolink.
  assert.equal(neutralizeChannelMentions("me@here.org"), "me@\u2060here.org");
});

Deno.test("defusing is idempotent and keeps a user mention working", () => {
  const once = neutralizeChannelMentions("@here @bob");
  assert.equal(neutralizeChannelMentions(once), once);
  assert.deepEqual([...explicitMentions(once, new Map([["@bob", ["b"]]])).ids], ["b"]);
});

Deno.test("renderPosts defuses the text and the prefix name, and leaves both when allowed", () => {
  const message = { text: "@channel look", sender: { name: "@all" } };
  const [prefixed] = renderPosts(message, "xmpp", { mode: "prefix", nameFormat: "{nick}" });
  assert.ok(!notifiesChannel(prefixed.message), prefixed.message);
  assert.equal(visible(prefixed.message), "**@all** @channel look");

  const [action] = renderPosts({ ...message, action: true }, "xmpp", {
    mode: "override",
    nameFormat: "{nick}",
  });
  assert.ok(!notifiesChannel(action.message), action.message);
  assert.equal(visible(action.message), "*@channel look*");

  const [allowed] = renderPosts(message, "xmpp", {
    mode: "prefix",
    nameFormat: "{nick}",
    allowChannelMentions: true,
  });
  assert.equal(allowed.message, "**@all** @channel look");
  assert.ok(notifiesChannel(allowed.message));
  assert.deepEqual(allowed.props, { [BRIDGE_MARKER_PROP]: "xmpp" });
});
