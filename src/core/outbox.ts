/**
 * The durable outbox: every delivery the bus accepts is in Deno KV before it is attempted, and leaves only in the
 * commit that records it in the id map (one given up on is recorded with its source side only, so that a replay of
 * it is dropped). What a crash leaves there is delivered again at the next start, with the same delivery id. The ids of handled edits, removals and reactions, remembered so
 * that a replay after a restart is dropped, go through the same commits.
 *
 * Writes are group-committed: those made while a commit is running (accepts of a burst, records of other
 * channels) go together in the next one, so durability costs a commit per round, not per write.
 *
 * @module
 */
import type { DirectionalMessage } from "./message.ts";
import type { BatchWrite, MessageLink, OutboxEntry, SeenEvent, Store } from "./store.ts";

/** Deno KV's limits on one atomic commit, with room to spare for keys and encoding. */
const MAX_MUTATIONS = 900;
const MAX_BYTES = 600_000;

interface Pending {
  write: BatchWrite;
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Writes accepted and delivered messages to the store in few atomic commits.
 *
 * @example
 * ```ts
 * const outbox = new Outbox(store);
 * const left = await outbox.load(); // what an earlier process did not finish
 * const { entry, durable } = outbox.accept(delivery); // durable once `durable` resolves
 * await outbox.delivered(entry, link); // recorded, and out of the outbox, in one later commit
 * ```
 */
export class Outbox {
  private readonly queue: Pending[] = [];
  private flushing = false;
  private lastSeq = 0;

  constructor(private readonly store: Store) {}

  /** The deliveries an earlier process accepted and did not record, in order per target channel. */
  async load(): Promise<OutboxEntry[]> {
    const entries = await this.store.listOutbox();
    for (const e of entries) this.lastSeq = Math.max(this.lastSeq, e.seq);
    return entries;
  }

  /**
   * Puts `delivery` in the outbox: its entry at once, for {@link delivered} (which may follow before it is durable:
   * writes commit in order), and `durable`, which resolves once it is.
   */
  accept(delivery: DirectionalMessage): { entry: OutboxEntry; durable: Promise<void> } {
    // Time-based, so that it keeps growing across restarts; load() moves it past any entry left behind.
    this.lastSeq = Math.max(this.lastSeq + 1, Date.now() * 1_000);
    const entry: OutboxEntry = { seq: this.lastSeq, delivery, acceptedAt: Date.now() };
    return { entry, durable: this.write({ kind: "accept", entry }) };
  }

  /**
   * Records `link` in the id map and removes `entry` from the outbox, in one commit, after the one that wrote the
   * entry (or in it).
   */
  delivered(entry: OutboxEntry | undefined, link: MessageLink): Promise<void> {
    return this.write({ kind: "deliver", entry, link });
  }

  /** Remembers that `event` (not a message: those are in the id map) was handled, so that a replay is dropped. */
  seen(event: SeenEvent): Promise<void> {
    return this.write({ kind: "seen", event });
  }

  private write(write: BatchWrite): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ write, bytes: sizeOf(write), resolve, reject });
      // Started after the current task's other writes have joined the queue.
      if (!this.flushing) {
        this.flushing = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.takeBatch();
        try {
          await this.store.writeBatch(batch.map((p) => p.write));
          for (const p of batch) p.resolve();
        } catch (err) {
          if (batch.length === 1) {
            batch[0].reject(err);
            continue;
          }
          // One write may be what failed (too large): the others must not fail with it.
          for (const p of batch) {
            await this.store.writeBatch([p.write]).then(p.resolve, p.reject);
          }
        }
        // Under load, the reads of the next messages waited behind that commit: a turn of the event loop lets
        // them finish, so that their writes join the next commit instead of each taking one.
        if (this.queue.length > 0) await new Promise((r) => setTimeout(r, 0));
      }
    } finally {
      this.flushing = false;
    }
  }

  /** The oldest queued writes that fit in one commit (at least one). */
  private takeBatch(): Pending[] {
    let mutations = 0;
    let bytes = 0;
    let n = 0;
    for (const p of this.queue) {
      const m = mutationsOf(p.write);
      if (n > 0 && (mutations + m > MAX_MUTATIONS || bytes + p.bytes > MAX_BYTES)) break;
      mutations += m;
      bytes += p.bytes;
      n++;
    }
    return this.queue.splice(0, n);
  }
}

function mutationsOf(write: BatchWrite): number {
  if (write.kind !== "deliver") return 1;
  return 1 + (write.entry ? 1 : 0) + Object.values(write.link.refs).reduce((n, ref) => n + ref.ids.length, 0);
}

/** About how many bytes `write` adds to a commit, over-estimated (see {@link approxBytes}), plus room for its keys. */
function sizeOf(write: BatchWrite): number {
  const value = write.kind === "deliver" ? write.link : write.kind === "seen" ? write.event : write.entry;
  return approxBytes(value) + 256;
}

/**
 * An upper bound of the bytes V8 serializes `value` (plain data) into: 2 per string code unit (V8 stores a
 * string as Latin-1 or UTF-16), 9 per number or boolean, a few per key and container. Walked rather than
 * `JSON.stringify`-ed, which builds a string per write only to measure it.
 */
function approxBytes(value: unknown): number {
  switch (typeof value) {
    case "string":
      return value.length * 2 + 4;
    case "object": {
      if (value === null) return 1;
      let n = 4;
      if (Array.isArray(value)) {
        for (const v of value) n += approxBytes(v);
        return n;
      }
      for (const k in value) n += k.length * 2 + 4 + approxBytes((value as Record<string, unknown>)[k]);
      return n;
    }
    default:
      return 9;
  }
}
