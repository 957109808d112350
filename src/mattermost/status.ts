/**
 * Mattermost users' statuses (online, away, dnd, offline), read by polling: the server sends `status_change` only to
 * the user's own connections, so the bridge asks for the statuses it needs, in batches (`POST /users/status/ids`).
 *
 * Only the users whose stand-ins may be somewhere are watched: those the bridge handed something of (a post, a
 * reaction, typing), since ghosts and puppets appear on the other side on first activity only, and, where ghosts
 * go away when idle (`ibr`), only for as long as they stay. A channel's silent members cost nothing.
 *
 * @module
 */
import type { UserStatus } from "../core/bridge.ts";
import type { Client4 } from "./api.ts";

/** Statuses per request: small bodies, and well under what a server takes in one query. */
const BATCH = 100;

const STATUSES: readonly string[] = ["online", "away", "dnd", "offline"];

/** Settings of {@link StatusPoller}. */
export interface StatusPollerOptions {
  /** How often the watched users' statuses are read. */
  intervalMs: number;
  /** Reads the statuses of up to 100 users (`POST /users/status/ids`). */
  read: (userIds: string[]) => Promise<Array<{ user_id: string; status: string }>>;
  /** A watched user's status changed (or was first read as other than online, which a new stand-in shows). */
  onChange: (userId: string, status: UserStatus) => void;
  /** A round of reads failed; the next round tries again. */
  onError?: (err: unknown) => void;
  /**
   * How long after their last activity a user stops being watched: as long as their stand-in stays (an `ibr`
   * ghost disconnects when idle); absent, for as long as this runs (component puppets stay in their rooms).
   */
  forgetAfterMs?: number;
}

/**
 * Polls the statuses of the watched users and reports changes.
 *
 * @example
 * ```ts
 * const poller = new StatusPoller({ intervalMs: 60_000, read: (ids) => client.getStatusesByIds(ids), onChange });
 * poller.watch(userId); // from now on, read every minute
 * poller.start();
 * ```
 */
export class StatusPoller {
  /** Watched users, with their last status read (undefined until read once). */
  private readonly known = new Map<string, UserStatus | undefined>();
  /** When each watched user was last active. */
  private readonly active = new Map<string, number>();
  private timer?: ReturnType<typeof setTimeout>;
  private running = false;
  /** The round under way, if any. */
  private round?: Promise<void>;

  constructor(private readonly opts: StatusPollerOptions) {}

  /** Reads `userId`'s status from the next round on (they were active just now). */
  watch(userId: string): void {
    if (!this.known.has(userId)) this.known.set(userId, undefined);
    this.active.set(userId, Date.now());
  }

  /** How many users are watched. */
  get watched(): number {
    return this.known.size;
  }

  /** Starts polling, the first round one interval from now. */
  start(): void {
    this.running = true;
    this.schedule();
  }

  /** Stops polling; resolves once a round under way is over. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.round;
  }

  /** Reads every watched user's status once, in batches, and reports the changes. */
  async poll(): Promise<void> {
    const forgetAfter = this.opts.forgetAfterMs;
    if (forgetAfter !== undefined) {
      const cutoff = Date.now() - forgetAfter;
      for (const [userId, at] of this.active) {
        if (at > cutoff) continue;
        this.active.delete(userId);
        this.known.delete(userId);
      }
    }
    const ids = [...this.known.keys()];
    for (let i = 0; i < ids.length; i += BATCH) {
      const statuses = await this.opts.read(ids.slice(i, i + BATCH));
      for (const { user_id: userId, status } of statuses) {
        if (!this.known.has(userId) || !STATUSES.includes(status)) continue;
        const before = this.known.get(userId);
        this.known.set(userId, status as UserStatus);
        // A stand-in starts out online: the first read matters only when it says otherwise.
        if (status !== (before ?? "online")) this.opts.onChange(userId, status as UserStatus);
      }
    }
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      if (this.known.size === 0) return this.schedule();
      this.round = this.poll().catch((err) => this.opts.onError?.(err)).finally(() => {
        this.round = undefined;
        this.schedule();
      });
    }, this.opts.intervalMs);
  }
}

/** `POST /users/status/ids` through Client4. */
export function readStatuses(
  client: Client4,
  userIds: string[],
): Promise<Array<{ user_id: string; status: string }>> {
  return client.getStatusesByIds(userIds);
}
