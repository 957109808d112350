/**
 * Property-based tests of the Mattermost websocket frame → event path: whatever arrives, nothing throws, and what
 * gets through is well-typed. Bounded in runs and time so they run with the normal suite. Crashes found here are
 * kept as plain regression tests below (and as frames in tests/mm_inbound_test.ts).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parsePost, parsePostedEvent } from "../../src/mattermost/post.ts";
import { DEFAULT_RECONNECT, isRecord, MattermostSocket, parseFrame } from "../../src/mattermost/websocket.ts";
import { Backoff } from "../../src/core/backoff.ts";

const RUNS = { numRuns: 400, interruptAfterTimeLimit: 10_000 };

/** Values of every JSON-ish kind, including the awkward keys that reach prototypes. */
const anyValue = fc.oneof(
  fc.anything({ maxDepth: 2 }),
  fc.constantFrom(
    "__proto__",
    "constructor",
    "toString",
    "__defineGetter__",
    "hasOwnProperty",
    NaN,
    -1,
    0,
    1e300,
  ),
);

/** A post as JSON, each field either right or of a random type. */
const postJson = fc.record(
  {
    id: fc.oneof(fc.constant("postid00000000000000000001"), anyValue),
    channel_id: fc.oneof(fc.constant("channelid00000000000000001"), anyValue),
    user_id: fc.oneof(fc.constant("userid00000000000000000001"), anyValue),
    message: fc.oneof(fc.string(), anyValue),
    type: fc.oneof(fc.constantFrom("", "me", "system_join_channel"), anyValue),
    create_at: fc.oneof(fc.integer(), fc.double(), anyValue),
    update_at: anyValue,
    delete_at: anyValue,
    root_id: anyValue,
    props: anyValue,
  },
  { requiredKeys: [] },
).map((p) => JSON.stringify(p));

/** Event-shaped frames whose every field may be wrong. */
const eventFrame = fc.record(
  {
    event: fc.oneof(
      fc.constantFrom("hello", "posted", "user_updated", "status_change", "typing", ""),
      anyValue,
    ),
    seq: fc.oneof(fc.nat(5), anyValue),
    data: fc.oneof(
      fc.record({ post: fc.oneof(postJson, anyValue) }, { requiredKeys: [] }),
      fc.record({ connection_id: anyValue, user: anyValue }, { requiredKeys: [] }),
      anyValue,
    ),
    broadcast: anyValue,
  },
  { requiredKeys: [] },
).map((f) => JSON.stringify(f));

/** Hellos, which the client reads most deeply (`data.connection_id`). */
const helloFrame = fc.record({
  event: fc.constant("hello"),
  seq: fc.nat(3),
  data: fc.oneof(fc.constant(null), fc.record({ connection_id: anyValue }, { requiredKeys: [] }), anyValue),
}, { requiredKeys: ["event", "seq"] }).map((f) => JSON.stringify(f));

/** Reply-shaped frames, numbered by anything. */
const replyFrame = fc.record({ status: anyValue, seq_reply: fc.oneof(fc.nat(5), anyValue), data: anyValue }, {
  requiredKeys: ["seq_reply"],
}).map((f) => JSON.stringify(f));

/** Anything that can come out of a websocket's `data`, text or not. */
const frame = fc.oneof(
  { arbitrary: eventFrame, weight: 6 },
  { arbitrary: replyFrame, weight: 2 },
  { arbitrary: helloFrame, weight: 2 },
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string(),
  fc.string({ unit: "binary" }),
  anyValue,
);

Deno.test("parseFrame never throws and passes on only well-formed events and replies", () => {
  fc.assert(
    fc.property(frame, (raw) => {
      const f = parseFrame(raw);
      if (f.kind === "event") {
        assert.equal(typeof f.event, "string");
        assert.ok(f.event !== "");
        assert.ok(Number.isSafeInteger(f.seq) && f.seq >= 0);
        assert.ok(isRecord(f.data));
        if (f.event === "hello") assert.equal(typeof f.data.connection_id, "string");
      } else if (f.kind === "reply") {
        assert.ok(Number.isSafeInteger(f.seqReply) && f.seqReply >= 1);
      } else {
        assert.equal(typeof f.reason, "string");
      }
    }),
    RUNS,
  );
});

Deno.test("parsePostedEvent never throws and returns only posts whose fields have the right types", () => {
  const data = fc.oneof(fc.record({ post: fc.oneof(postJson, anyValue) }, { requiredKeys: [] }), anyValue);
  fc.assert(
    fc.property(data, (d) => {
      const post = parsePostedEvent(d);
      if (post === null) return;
      for (const key of ["id", "channel_id", "user_id", "message", "type"] as const) {
        assert.equal(typeof post[key], "string", key);
      }
      for (const key of ["create_at", "update_at", "delete_at"] as const) {
        assert.ok(post[key] === undefined || Number.isFinite(post[key]), key);
      }
      assert.ok(post.root_id === undefined || typeof post.root_id === "string");
      assert.ok(post.props === undefined || isRecord(post.props));
    }),
    RUNS,
  );
});

/** A socket that never touches the network; the client installs its handlers on it. */
class FakeSocket extends EventTarget {
  readyState: number = WebSocket.OPEN;
  onopen: unknown = null;
  onclose: unknown = null;
  onerror: unknown = null;
  send(_text: string): void {}
  close(): void {
    this.readyState = WebSocket.CLOSED;
  }
}

Deno.test("behind the frame guard, @mattermost/client and the event listeners never throw on any frame", () => {
  const errors: unknown[] = [];
  let fake!: FakeSocket;
  const socket = new MattermostSocket({
    url: "ws://fuzz.invalid/api/v4/websocket",
    token: "t",
    // A seq mismatch makes the client reconnect: never within this test.
    reconnect: { initialMs: 3_600_000, maxMs: 3_600_000, jitterMs: 0 },
    connect: () => (fake = new FakeSocket()) as unknown as WebSocket,
    events: {
      onEvent: (event, data) => {
        try {
          if (event === "posted") parsePostedEvent(data);
          if (event === "user_updated" && isRecord(data.user)) parsePost(data.user);
        } catch (err) {
          errors.push(err);
        }
      },
      onReconnect: () => {},
      onClose: () => {},
    },
  });
  socket.open();
  const handler = (fake as unknown as { onmessage: (ev: { data: unknown }) => void }).onmessage;
  try {
    fc.assert(
      fc.property(frame, (raw) => {
        if (parseFrame(raw).kind === "invalid") return; // the guard drops it before the client sees it
        handler({ data: raw });
        assert.deepEqual(errors, []);
      }),
      RUNS,
    );
  } finally {
    socket.close();
  }
});

// Regression tests: frames that made the unguarded client throw (each ended the process with exit 1).
for (
  const [name, raw] of [
    ["a null frame (reads seq_reply of null)", "null"],
    ["a non-JSON frame (JSON.parse throws)", "{not json"],
    ["a reply numbered __proto__ (calls Object.prototype)", '{"seq_reply":"__proto__"}'],
    ["a reply numbered __defineGetter__ (calls it without a function)", '{"seq_reply":"__defineGetter__"}'],
    ["a hello without data (reads connection_id of undefined)", '{"event":"hello","seq":0}'],
  ]
) {
  Deno.test(`the frame guard drops ${name}`, () => {
    assert.equal(parseFrame(raw).kind, "invalid");
  });
}

Deno.test("the default reconnect wait, jitter included, never exceeds 30 s", () => {
  const highest = new Backoff(DEFAULT_RECONNECT, () => 0.999_999);
  const waits = Array.from({ length: 20 }, () => highest.next());
  assert.equal(waits[0], 5_000);
  assert.ok(Math.max(...waits) <= 30_000, `waits ${waits.join(", ")}`);
});

/**
 * Closes `fake` as the network would and returns the waits the client scheduled its reconnect with; `reconnect`
 * runs that reconnect.
 */
function closeAndCapture(fake: FakeSocket): { waits: number[]; reconnect: () => void } {
  const waits: number[] = [];
  let reconnect = () => {};
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void, ms: number) => {
    waits.push(ms);
    reconnect = fn;
    return 0;
  }) as unknown as typeof setTimeout;
  try {
    (fake.onclose as (ev: CloseEvent) => void)(new CloseEvent("close", { code: 1006 }));
  } finally {
    globalThis.setTimeout = real;
  }
  return { waits, reconnect };
}

Deno.test("the websocket's reconnect waits follow the backoff, capped, and start over after an open", () => {
  let fake!: FakeSocket;
  const socket = new MattermostSocket({
    url: "ws://backoff.invalid/api/v4/websocket",
    token: "t",
    reconnect: { initialMs: 100, maxMs: 1_000, jitterMs: 0 },
    connect: () => (fake = new FakeSocket()) as unknown as WebSocket,
    events: { onEvent: () => {}, onReconnect: () => {}, onClose: () => {} },
  });
  socket.open();
  try {
    (fake.onopen as () => void)();
    const waits: number[] = [];
    for (let failure = 0; failure < 6; failure++) {
      const closed = closeAndCapture(fake);
      waits.push(...closed.waits);
      closed.reconnect(); // a new socket that fails to open
    }
    assert.deepEqual(waits, [100, 200, 400, 800, 1_000, 1_000]);
    (fake.onopen as () => void)();
    assert.deepEqual(closeAndCapture(fake).waits, [100], "an open starts the backoff over");
  } finally {
    socket.close();
  }
});
