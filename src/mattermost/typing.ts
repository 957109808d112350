/**
 * Mattermost's typing model, both ways. Mattermost has only "is typing" (the `typing` websocket event, published by
 * `POST /users/{id}/typing` or the `user_typing` action) and no "stopped": the webapp sends it again at most every
 * `TimeBetweenUserTypingUpdatesMilliseconds` (5 s by default) while its user types, and every client drops the
 * indicator that long after the last one, or when the typer's post arrives.
 *
 * - In, {@link TypingIn} turns those events into a start and, once they stop coming (or the typer posts), an end:
 *   one start per typing spell, whatever the number of events.
 * - Out, {@link TypingOut} keeps a remote typer's indicator up by publishing again before clients drop it, until the
 *   typing ends or runs for too long, at most once per interval per user and channel.
 *
 * @module
 */
import type { Client4 } from "./api.ts";

/** What {@link TypingIn} reports: `active` true when a typing spell starts, false when it ended. */
export type TypingChange = (
  change: { channelId: string; userId: string; parentId: string; active: boolean },
) => void;

/** Settings of {@link TypingIn}. */
export interface TypingInOptions {
  /**
   * How long after the last `typing` event typing counts as stopped: a little more than the webapp's
   * 5 s between events, so that a user who keeps typing is not seen stopping between two of them.
   */
  timeoutMs: number;
  onChange: TypingChange;
}

/**
 * Mattermost `typing` events as starts and ends of typing.
 *
 * @example
 * ```ts
 * const typing = new TypingIn({ timeoutMs: 6_000, onChange: (c) => console.log(c.userId, c.active) });
 * typing.typed(channelId, userId, ""); // logs "… true"; 6 s later "… false" unless another event came
 * typing.posted(channelId, userId); // the post ends it: no "false" follows
 * ```
 */
export class TypingIn {
  /** Users typing now, by `channel user`, with the timer that ends their spell. */
  private readonly typing = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(private readonly opts: TypingInOptions) {}

  /** A `typing` event of `userId` in `channelId`. */
  typed(channelId: string, userId: string, parentId: string): void {
    const key = `${channelId} ${userId}`;
    const running = this.typing.get(key);
    clearTimeout(running);
    this.typing.set(
      key,
      setTimeout(() => {
        this.typing.delete(key);
        this.opts.onChange({ channelId, userId, parentId, active: false });
      }, this.opts.timeoutMs),
    );
    if (running === undefined) this.opts.onChange({ channelId, userId, parentId, active: true });
  }

  /** `userId` posted in `channelId`: the post itself ends the typing on every side, so no end is reported. */
  posted(channelId: string, userId: string): void {
    const key = `${channelId} ${userId}`;
    clearTimeout(this.typing.get(key));
    this.typing.delete(key);
  }

  /** Forgets every spell, reporting no ends (the connector is stopping). */
  clear(): void {
    for (const timer of this.typing.values()) clearTimeout(timer);
    this.typing.clear();
  }
}

/** Settings of {@link TypingOut}. */
export interface TypingOutOptions {
  /** How often a typing indicator is published again while the typing goes on: under the clients' 5 s. */
  refreshMs: number;
  /**
   * How long an indicator is kept up without an end: an XMPP client that never sends `paused` (it crashed, it
   * left) does not show its user typing forever.
   */
  maxMs: number;
  /** Publishes `userId`'s indicator in `channelId` once (`POST /users/{id}/typing`). */
  publish: (userId: string, channelId: string) => Promise<void>;
  /** Told of a failed refresh (the first publish's failure is the caller's). */
  onError?: (err: unknown) => void;
}

/**
 * Remote users' typing shown on Mattermost, kept up while it lasts.
 *
 * @example
 * ```ts
 * const out = new TypingOut({ refreshMs: 4_000, maxMs: 30_000, publish: (u, c) => publishUserTyping(client, u, c) });
 * await out.set(puppetId, channelId, true); // published now, and every 4 s
 * await out.set(puppetId, channelId, false); // no more: clients drop it within 5 s
 * ```
 */
export class TypingOut {
  /** Indicators kept up, by `channel user`. */
  private readonly shown = new Map<string, { timer: ReturnType<typeof setInterval>; since: number }>();

  constructor(private readonly opts: TypingOutOptions) {}

  /** Starts (publishing at once, unless it is already up) or ends `userId`'s indicator in `channelId`. */
  async set(userId: string, channelId: string, active: boolean): Promise<void> {
    const key = `${channelId} ${userId}`;
    const shown = this.shown.get(key);
    if (!active) {
      if (shown) clearInterval(shown.timer);
      this.shown.delete(key);
      return;
    }
    // Already up: the refresh keeps it; publishing again now would only add calls.
    if (shown) {
      shown.since = Date.now();
      return;
    }
    const entry = {
      since: Date.now(),
      timer: setInterval(() => {
        if (Date.now() - entry.since >= this.opts.maxMs) {
          clearInterval(entry.timer);
          if (this.shown.get(key) === entry) this.shown.delete(key);
          return;
        }
        this.opts.publish(userId, channelId).catch((err) => this.opts.onError?.(err));
      }, this.opts.refreshMs),
    };
    this.shown.set(key, entry);
    try {
      await this.opts.publish(userId, channelId);
    } catch (err) {
      clearInterval(entry.timer);
      if (this.shown.get(key) === entry) this.shown.delete(key);
      throw err;
    }
  }

  /** Stops every refresh. */
  clear(): void {
    for (const { timer } of this.shown.values()) clearInterval(timer);
    this.shown.clear();
  }
}

/**
 * `POST /users/{userId}/typing` (api4/user.go `publishUserTyping`): the caller must be that user or have
 * `manage_system`, and the user must be able to post in the channel. Client4 has no method for it.
 */
export async function publishUserTyping(
  client: Client4,
  userId: string,
  channelId: string,
  parentId = "",
): Promise<void> {
  // Client4's own fetch (protected in its types): its auth, its errors, and the 429 handling of api.ts.
  const doFetch = (client as unknown as {
    doFetch(url: string, options: { method: string; body: string }): Promise<unknown>;
  }).doFetch;
  await doFetch(`${client.getUserRoute(userId)}/typing`, {
    method: "post",
    body: JSON.stringify({ channel_id: channelId, parent_id: parentId }),
  });
}
