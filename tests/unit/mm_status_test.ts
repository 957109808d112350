import assert from "node:assert/strict";
import type { UserStatus } from "../../src/core/bridge.ts";
import { createClient } from "../../src/mattermost/api.ts";
import { readStatuses, StatusPoller } from "../../src/mattermost/status.ts";
import { startMattermostStandIn } from "../mm_server/server.ts";
import { sleep } from "../helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "the poller reads 150 watched users in two batch requests and reports only what changed",
  opts,
  async () => {
    const mm = await startMattermostStandIn();
    try {
      const users = Array.from({ length: 150 }, (_, i) => mm.createUser(`user${i}`));
      const client = createClient(mm.url, mm.bot.token);
      const changes: Array<[string, UserStatus]> = [];
      const poller = new StatusPoller({
        intervalMs: 60_000,
        read: (ids) => readStatuses(client, ids),
        onChange: (userId, status) => changes.push([userId, status]),
      });
      for (const u of users) poller.watch(u.id);
      const polls = () => mm.requestLog.filter((r) => r.path === "/api/v4/users/status/ids").length;
      // Never seen users are offline: reported, since a new stand-in starts out online.
      await poller.poll();
      assert.equal(polls(), 2, "150 users in batches of 100");
      assert.equal(changes.length, 150);
      assert.ok(changes.every(([, status]) => status === "offline"));
      changes.length = 0;
      await fetch(`${mm.url}/api/v4/users/${users[42].id}/status`, {
        method: "PUT",
        headers: { Authorization: `Bearer ${users[42].token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ user_id: users[42].id, status: "dnd" }),
      }).then((r) => r.body?.cancel());
      await poller.poll();
      assert.deepEqual(changes, [[users[42].id, "dnd"]], "only the one that changed");
    } finally {
      await mm.close();
    }
  },
);

Deno.test("a user idle for longer than their ghost stays is no longer read", opts, async () => {
  const mm = await startMattermostStandIn();
  try {
    const [idle, busy] = [mm.createUser("idle"), mm.createUser("busy")];
    const client = createClient(mm.url, mm.bot.token);
    const asked: string[][] = [];
    const poller = new StatusPoller({
      intervalMs: 60_000,
      forgetAfterMs: 50,
      read: (ids) => {
        asked.push(ids);
        return readStatuses(client, ids);
      },
      onChange: () => {},
    });
    poller.watch(idle.id);
    poller.watch(busy.id);
    await poller.poll();
    assert.deepEqual(asked, [[idle.id, busy.id]]);
    await sleep(100);
    poller.watch(busy.id); // active again
    await poller.poll();
    assert.deepEqual(asked.at(-1), [busy.id], "only the one still active");
    assert.equal(poller.watched, 1);
  } finally {
    await mm.close();
  }
});
