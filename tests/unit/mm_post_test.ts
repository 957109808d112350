import assert from "node:assert/strict";
import { runeLength } from "../../src/core/text.ts";
import { retryAfterMs } from "../../src/mattermost/api.ts";
import {
  BRIDGE_MARKER_PROP,
  isBridgeable,
  MAX_POST_RUNES,
  parsePostedEvent,
  type Post,
  postText,
  renderPosts,
} from "../../src/mattermost/post.ts";

const BOT = "botuserid0000000000000000a";

function post(overrides: Partial<Post> = {}): Post {
  return {
    id: "postid00000000000000000001",
    channel_id: "channelid00000000000000001",
    user_id: "userid00000000000000000001",
    message: "hello 😀\nline two",
    type: "",
    create_at: 1_700_000_000_000,
    ...overrides,
  };
}

Deno.test("parsePostedEvent reads the post from the JSON string of a posted event", () => {
  // pending_post_id is how the bus recognises the bridge's own posts: the parser must keep it.
  const p = post({ root_id: "", props: { a: 1 }, pending_post_id: "botid:delivery:0" });
  const parsed = parsePostedEvent({ channel_display_name: "Town", post: JSON.stringify(p), team_id: "t" });
  assert.deepEqual(parsed, p);
});

Deno.test("parsePostedEvent returns null for malformed JSON", () => {
  assert.equal(parsePostedEvent({ post: '{"id": "x", "channel_id":' }), null);
  assert.equal(parsePostedEvent({ post: "" }), null);
  assert.equal(parsePostedEvent({ post: "null" }), null);
});

Deno.test("parsePostedEvent returns null when the post is not a string or lacks its fields", () => {
  assert.equal(parsePostedEvent({ post: post() }), null, "an object instead of a JSON string");
  assert.equal(parsePostedEvent({}), null);
  assert.equal(parsePostedEvent(null), null);
  assert.equal(parsePostedEvent(undefined), null);
  assert.equal(parsePostedEvent("not an event"), null);
  const { message: _m, ...noMessage } = post();
  assert.equal(parsePostedEvent({ post: JSON.stringify(noMessage) }), null);
  assert.equal(parsePostedEvent({ post: JSON.stringify({ ...post(), channel_id: 7 }) }), null);
  assert.equal(parsePostedEvent({ post: JSON.stringify([post()]) }), null);
});

Deno.test("parsePostedEvent leaves out fields of the wrong type instead of trusting them", () => {
  const raw = {
    ...post(),
    create_at: "abc",
    update_at: Infinity,
    delete_at: null,
    root_id: 5,
    type: ["x"],
    props: "not an object",
  };
  const parsed = parsePostedEvent({ post: JSON.stringify(raw) })!;
  assert.deepEqual(parsed, {
    id: raw.id,
    channel_id: raw.channel_id,
    user_id: raw.user_id,
    message: raw.message,
    type: "",
  });
  assert.equal(parsePostedEvent({ post: JSON.stringify({ ...post(), user_id: 7 }) }), null);
  assert.equal(parsePostedEvent({ post: JSON.stringify({ ...post(), id: "" }) }), null);
});

Deno.test("isBridgeable accepts a normal post by another user", () => {
  assert.equal(isBridgeable(post(), BOT), true);
  assert.equal(isBridgeable(post({ delete_at: 0, props: { other: "x" } }), BOT), true);
});

Deno.test("isBridgeable rejects system posts", () => {
  assert.equal(isBridgeable(post({ type: "system_join_channel" }), BOT), false);
  assert.equal(isBridgeable(post({ type: "system_header_change" }), BOT), false);
});

Deno.test("isBridgeable rejects the bot's own posts", () => {
  assert.equal(isBridgeable(post({ user_id: BOT }), BOT), false);
});

Deno.test("isBridgeable rejects posts carrying the bridge marker prop", () => {
  assert.equal(isBridgeable(post({ props: { [BRIDGE_MARKER_PROP]: "xmpp" } }), BOT), false);
});

Deno.test("isBridgeable rejects deleted posts", () => {
  assert.equal(isBridgeable(post({ delete_at: 1_700_000_000_500 }), BOT), false);
});

Deno.test("override mode posts as the remote author: from_webhook, override_username and the marker", () => {
  const drafts = renderPosts({ text: "hi *there*", sender: { name: "alice" } }, "xmpp", {
    mode: "override",
    nameFormat: "{nick} (xmpp)",
  });
  assert.deepEqual(drafts, [{
    message: "hi *there*",
    type: "",
    props: { from_webhook: "true", override_username: "alice (xmpp)", [BRIDGE_MARKER_PROP]: "xmpp" },
  }]);
});

Deno.test("the name template can use the display name, falling back to the handle", () => {
  const opts = { mode: "override" as const, nameFormat: "{displayname} [{username}]" };
  assert.equal(
    renderPosts({ text: "x", sender: { name: "bob", displayName: "Bob B" } }, "xmpp", opts)[0].props
      .override_username,
    "Bob B [bob]",
  );
  assert.equal(
    renderPosts({ text: "x", sender: { name: "bob" } }, "xmpp", opts)[0].props.override_username,
    "bob [bob]",
  );
});

Deno.test("prefix mode puts the escaped name in bold in the message and sets no override", () => {
  const drafts = renderPosts({ text: "hello", sender: { name: "a_b*c" } }, "xmpp", {
    mode: "prefix",
    nameFormat: "{nick} (xmpp)",
  });
  assert.equal(drafts.length, 1);
  assert.equal(drafts[0].message, "**a\\_b\\*c (xmpp)** hello");
  assert.deepEqual(drafts[0].props, { [BRIDGE_MARKER_PROP]: "xmpp" });
});

Deno.test("a 20,000-rune text becomes 2 posts within the limit that join back to the text (override)", () => {
  const text = "😀".repeat(20_000);
  const drafts = renderPosts({ text, sender: { name: "alice" } }, "xmpp", {
    mode: "override",
    nameFormat: "{nick}",
  });
  assert.equal(drafts.length, 2);
  for (const d of drafts) {
    assert.ok(runeLength(d.message) <= MAX_POST_RUNES, `${runeLength(d.message)} runes`);
    assert.equal(d.props.override_username, "alice");
    assert.equal(d.props[BRIDGE_MARKER_PROP], "xmpp");
  }
  assert.equal(drafts.map((d) => d.message).join(""), text);
});

Deno.test("a 20,000-rune text becomes 2 posts within the limit, prefix included, in prefix mode", () => {
  let text = "";
  for (let i = 0; text.length < 40_000; i++) text += `${i % 10}é `;
  text = [...text].slice(0, 20_000).join("");
  assert.equal(runeLength(text), 20_000);
  const name = "bob";
  const prefix = `**${name}** `;
  const drafts = renderPosts({ text, sender: { name } }, "xmpp", { mode: "prefix", nameFormat: "{nick}" });
  assert.equal(drafts.length, 2);
  for (const d of drafts) {
    assert.ok(runeLength(d.message) <= MAX_POST_RUNES, `${runeLength(d.message)} runes`);
    assert.ok(d.message.startsWith(prefix), d.message.slice(0, 20));
  }
  assert.equal(drafts.map((d) => d.message.slice(prefix.length)).join(""), text);
});

Deno.test("each split post gets its own props object", () => {
  const drafts = renderPosts({ text: "a".repeat(20_000), sender: { name: "x" } }, "xmpp", {
    mode: "override",
    nameFormat: "{nick}",
  });
  assert.notEqual(drafts[0].props, drafts[1].props);
});

Deno.test("retryAfterMs converts Retry-After seconds to ms, defaulting to 1 s", () => {
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "2" })), 2_000);
  assert.equal(retryAfterMs(new Headers({ "X-RateLimit-Reset": "3" })), 3_000);
  assert.equal(retryAfterMs(new Headers()), 1_000);
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "soon" })), 1_000);
  // Retry-After wins over X-RateLimit-Reset.
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "4", "X-RateLimit-Reset": "9" })), 4_000);
});

Deno.test("retryAfterMs stays between 100 ms and 30 s", () => {
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "0" })), 100);
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "-5" })), 100);
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "0.01" })), 100);
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "3600" })), 30_000);
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "30" })), 30_000);
  assert.equal(retryAfterMs(new Headers({ "Retry-After": "29.5" })), 29_500);
});

Deno.test("a post without text (files only) is not bridged as an empty message", () => {
  const post = { id: "p", channel_id: "c", user_id: "u", message: " \n", type: "", create_at: 1 };
  assert.equal(isBridgeable(post, "bot"), false);
  assert.equal(isBridgeable({ ...post, message: "hi" }, "bot"), true);
});

Deno.test("a /me post (type me) is bridged; integrations' own types are not", () => {
  assert.equal(isBridgeable(post({ type: "me", message: "*waves*" }), BOT), true);
  assert.equal(isBridgeable(post({ type: "me", message: "**" }), BOT), false, "a bare /me says nothing");
  assert.equal(isBridgeable(post({ type: "custom_poll" }), BOT), false);
  assert.equal(isBridgeable(post({ type: "slack_attachment" }), BOT), false);
});

Deno.test("postText reads a me post as an action without the server's *…*", () => {
  assert.deepEqual(postText({ type: "me", message: "*waves at **you***" }), {
    text: "waves at **you**",
    action: true,
  });
  assert.deepEqual(postText({ type: "me", message: "shrugs" }), { text: "shrugs", action: true });
  assert.deepEqual(postText({ type: "", message: "*just emphasis*" }), { text: "*just emphasis*" });
});

Deno.test("an action becomes a me post in *…*, with the override name", () => {
  const drafts = renderPosts({ text: "waves", sender: { name: "alice" }, action: true }, "xmpp", {
    mode: "override",
    nameFormat: "{nick} (xmpp)",
  });
  assert.deepEqual(drafts, [{
    message: "*waves*",
    type: "me",
    props: { from_webhook: "true", override_username: "alice (xmpp)", [BRIDGE_MARKER_PROP]: "xmpp" },
  }]);
});

Deno.test("in prefix mode an action keeps the bold name outside the emphasis", () => {
  const drafts = renderPosts({ text: "waves\n", sender: { name: "alice" }, action: true }, "xmpp", {
    mode: "prefix",
    nameFormat: "{nick}",
  });
  assert.deepEqual(drafts.map((d) => [d.type, d.message]), [["me", "**alice** *waves*\n"]]);
});

Deno.test("a long action is split into me posts within the limit, each in *…*", () => {
  const text = "ab ".repeat(7_000);
  const drafts = renderPosts({ text, sender: { name: "bob" }, action: true }, "xmpp", {
    mode: "prefix",
    nameFormat: "{nick}",
  });
  assert.equal(drafts.length, 2);
  const inner: string[] = [];
  for (const d of drafts) {
    assert.ok(runeLength(d.message) <= MAX_POST_RUNES, `${runeLength(d.message)} runes`);
    assert.equal(d.type, "me");
    const m = /^\*\*bob\*\* \*([^]*)\*(\s*)$/.exec(d.message);
    assert.ok(m, d.message.slice(0, 30));
    inner.push(m[1] + m[2]);
  }
  assert.equal(inner.join(""), text);
});
