/**
 * Websocket frames no Mattermost server sends, but a proxy, a plugin or a bug can: for tests that the bridge
 * skips them and stays up.
 *
 * @module
 */

/** Frames no Mattermost server sends, but a proxy, a plugin or a bug can: sent raw, outside the numbering. */
export const RAW_MALFORMED_FRAMES = [
  "null",
  "42",
  '"just a string"',
  "[1,2,3]",
  "true",
  "",
  "{not json",
  '{"seq_reply":"__proto__"}',
  '{"seq_reply":"__defineGetter__"}',
  '{"event":"hello","seq":0}',
  '{"event":"hello","seq":0,"data":{"connection_id":7}}',
  '{"event":"posted"}',
  '{"event":42,"seq":1}',
  "x".repeat(4_000_000),
];

/** Events with a well-formed envelope and malformed content: numbered and queued like real ones. */
export const MALFORMED_EVENTS: Array<[string, unknown]> = [
  ["posted", undefined],
  ["posted", null],
  ["posted", []],
  ["posted", "a string"],
  ["posted", { post: "not json {" }],
  ["posted", { post: "null" }],
  ["posted", { post: 42 }],
  ["posted", { post: JSON.stringify([1, 2]) }],
  ["posted", {
    post: JSON.stringify({ id: 5, channel_id: null, user_id: [], message: { a: 1 }, create_at: "x" }),
  }],
  ["user_updated", { user: "not a user" }],
  ["user_updated", { user: null }],
  ["custom_plugin_event", { blob: "y".repeat(1_000_000) }],
  ["hello_world", 17],
];
