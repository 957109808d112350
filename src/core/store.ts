/**
 * The one module that owns every Deno KV key of the bridge.
 *
 * Keys:
 * - `["channel_map", network, channel]` → {@link ChannelMapping} (written for both sides at once)
 * - `["msg", network, channel, id]` → link id, one per identifier a network gave a message
 * - `["msg_link", linkId]` → {@link MessageLink}: per network, the message's parts with their named ids (schema 3)
 * - `["ghost", network, userId]` → {@link GhostRecord} of the user `userId` of `network`; `["ghost_jid", jid]` →
 *   {@link GhostOwner} (keeps ghost JIDs unique)
 * - `["outbox", targetNetwork, targetChannel, seq]` → {@link OutboxEntry}: a delivery accepted and not yet recorded
 * - `["cursor", network, channel]` → number: how far the channel was read, in the network's own position (e.g.
 *   Mattermost's `create_at`), so that what was said while the bridge was down is caught up at start
 * - `["reactions", targetNetwork, targetChannel, messageId, senderNetwork, senderId]` → string[]: the reactions of
 *   one sender of another network on one bridged message (`messageId`: the message's first id on the target
 *   network), as last delivered there; absent when empty. A voice that reacts for every sender (a relay, a bot)
 *   shows their union.
 * - `["event_seen", network, channel, eventId]` → true: an edit, removal or reactions event of `network` that was
 *   handled, so that a replay of it (a catch-up after a restart fetches changes again) is dropped. Expires after
 *   {@link EVENT_SEEN_TTL_MS}, well past how far back a catch-up reaches (`BRIDGE_CATCHUP_MAX_AGE`, 24 h by default).
 * - `["avatar_shown", userNetwork, userId, where]` → string: the version of the picture of the user `userId` of
 *   `userNetwork` last shown by their stand-in `where` (e.g. an IBR ghost's JID), so that an unchanged picture is not
 *   fetched and published again
 * - `["puppet", network, identity]` → {@link PuppetRecord}: the user that stands in on another network for the user
 *   `identity` of `network` (a Mattermost user for an XMPP user); `["puppet_user", userId]` → {@link PuppetOwner}
 *   (which identity a puppet user stands for, and keeps puppet users unique)
 * - `["meta", "schema_version"]` → number (see migrations.ts)
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { migrate } from "./migrations.ts";
import type { DirectionalMessage, IdName, MessagePart, MessageRef } from "./message.ts";

export type { MessageRef };
import type { StoredSecret } from "./secretbox.ts";
import { errorMessage } from "./errors.ts";

/** A bridged channel pair: for each network, its channel. */
export interface ChannelMapping {
  /** network name → channel id on that network (exactly two entries). */
  channels: Record<string, string>;
  /**
   * How the mapping was made. Static mappings come from `BRIDGE_MAPPINGS` and follow it at every start; mappings
   * made by command stay until unmapped; direct ones map a one-to-one conversation, opened by its first message.
   */
  origin: "static" | "command" | "direct";
  /**
   * For a static mapping: the `BRIDGE_MAPPINGS` entry it was made from (network → reference as configured), which
   * tells at the next start whether the entry is still there. Absent on static mappings stored before schema 2.
   */
  source?: Record<string, string>;
  /** Who made it (a user id on the network where the command was typed), when known. */
  createdBy?: string;
  createdAt: number;
}

/** One bridged message: the same message on each network it reached. */
export interface MessageLink {
  id: string;
  /** The network the message was written on. */
  source: string;
  /** network name → where the message lives there. */
  refs: Record<string, MessageRef>;
  createdAt: number;
}

/** The account a remote user appears as (an in-band-registered ghost). Its JID never changes once created. */
export interface GhostRecord {
  /** The network the user belongs to (where `userId` is their id). */
  network: string;
  /** The user's id on that network. */
  userId: string;
  jid: string;
  password: StoredSecret;
  createdAt: number;
}

/**
 * A user made on another network to stand in for the user `identity` of `network` (a Mattermost user for an XMPP
 * user): created once, kept across nick changes, never made twice.
 */
export interface PuppetRecord {
  /** The network the represented user belongs to. */
  network: string;
  /** Who they are there, the same across nick changes (XMPP: the real bare JID, else the occupant-id…). */
  identity: string;
  /** The puppet's user id on the other network. */
  userId: string;
  username: string;
  /** The name last shown for them (a nick). */
  displayName: string;
  /** The puppet's personal access token, sealed; absent until one was made. */
  token?: StoredSecret;
  /** Channels (of the other network) the puppet was made a member of because its user is present there. */
  channels: string[];
  /** When the bridge deactivated the puppet (cleaned up); absent while active. It comes back when seen again. */
  deactivatedAt?: number;
  /**
   * Deactivated on the other network by someone else (an admin): the bridge leaves it so and speaks for the user
   * itself until the puppet is reactivated there.
   */
  suspended?: boolean;
  createdAt: number;
}

/** Whose puppet a user id is. */
export interface PuppetOwner {
  network: string;
  identity: string;
}

/** A delivery accepted by the bus and not yet recorded in the id map: what a restart delivers again. */
export interface OutboxEntry {
  /** Its place in the target channel's outbox: entries are delivered in `seq` order. */
  seq: number;
  delivery: DirectionalMessage;
  acceptedAt: number;
}

/** How long a handled event's id is kept ({@link Store.eventSeen}): 7 days, longer than any catch-up reaches. */
export const EVENT_SEEN_TTL_MS = 7 * 24 * 3_600_000;

/** A handled event, by the network and channel it came from and its own id. */
export interface SeenEvent {
  network: string;
  channel: string;
  eventId: string;
}

/**
 * One write of {@link Store.writeBatch}: an accepted delivery enters the outbox; a delivered one is recorded in the
 * id map and leaves it (one given up on is recorded with its source side only); a handled event (not a message) is
 * remembered.
 */
export type BatchWrite =
  | { kind: "accept"; entry: OutboxEntry }
  | { kind: "deliver"; entry?: OutboxEntry; link: MessageLink }
  | { kind: "seen"; event: SeenEvent };

/** Whose ghost a JID is. */
export interface GhostOwner {
  network: string;
  userId: string;
}

const log = getLogger(["mmxmpp", "store"]);

/** SQLite's companions of a database file in WAL mode. */
const COMPANIONS = ["-wal", "-shm"];

/**
 * Makes the KV file at `path` owner-only before it is opened: a new file is created empty with mode 0600 (SQLite
 * takes an empty file as a new database, and gives its `-wal` and `-shm` files the database file's mode); an
 * existing file, or a companion left behind, with a looser mode is tightened, with a warning.
 */
async function restrictFileModes(path: string): Promise<void> {
  if (path === ":memory:" || path === "" || Deno.build.os === "windows") return;
  try {
    await Deno.writeFile(path, new Uint8Array(), { createNew: true, mode: 0o600 });
    // The mode given at creation is masked by the umask; set it exactly.
    await Deno.chmod(path, 0o600);
    return;
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  for (const file of [path, ...COMPANIONS.map((c) => path + c)]) {
    const mode = await Deno.stat(file).then((s) => s.mode, () => null);
    if (mode === null || (mode & 0o077) === 0) continue;
    const shown = { file, mode: `0${(mode & 0o777).toString(8)}`, newMode: `0${(mode & 0o700).toString(8)}` };
    try {
      await Deno.chmod(file, mode & 0o700);
    } catch (err) {
      // Not the owner: the file still opens; say what to run.
      log.warn(
        "{file} is open to other users (mode {mode}) and could not be changed ({error}): chmod 600 it",
        {
          ...shown,
          error: errorMessage(err),
        },
      );
      continue;
    }
    log.warn(
      "{file} was open to other users (mode {mode}); it can hold ghost passwords: changed it to {newMode}",
      shown,
    );
  }
}

/** What {@link Store.routeFacts} reads for one event. */
export interface RouteFacts {
  /** The mapping of the event's channel, if any. */
  mapping: ChannelMapping | null;
  /** The bridged message one of the event's own ids names, if any: the event is an echo or a replay. */
  link: MessageLink | null;
  /** Whether the event was recorded as handled (asked only for edits, removals and reactions). */
  seen: boolean;
}

/** How many keys one `Deno.Kv.getMany` reads at most. */
const GET_MANY_MAX = 10;

/** Outcome of {@link Store.addMapping}. */
export type AddMappingResult = { ok: true } | {
  ok: false;
  conflict: { network: string; existing: ChannelMapping };
};

/**
 * Typed access to the bridge state in Deno KV.
 *
 * @example
 * ```ts
 * const store = await Store.open(":memory:");
 * await store.addMapping({ channels: { mattermost: "c1", xmpp: "room@muc.example.org" }, origin: "command", createdAt: Date.now() });
 * store.close();
 * ```
 */
export class Store {
  private constructor(private readonly kv: Deno.Kv) {}

  /**
   * Opens (creating if needed) the KV file at `path` and runs pending migrations. The file and SQLite's `-wal` and
   * `-shm` companions are readable by the owner only (0600), whatever the umask: they can hold ghost passwords.
   */
  static async open(path: string): Promise<Store> {
    await restrictFileModes(path);
    const kv = await Deno.openKv(path);
    try {
      await migrate(kv);
    } catch (err) {
      kv.close();
      throw err;
    }
    return new Store(kv);
  }

  /** Closes the underlying KV handle. */
  close(): void {
    this.kv.close();
  }

  // --- channel mappings ---

  /** Stores a mapping for both sides in one atomic commit that fails if either side is already mapped. */
  async addMapping(mapping: ChannelMapping): Promise<AddMappingResult> {
    const entries = Object.entries(mapping.channels);
    const op = this.kv.atomic();
    for (const [network, channel] of entries) {
      op.check({ key: mapKey(network, channel), versionstamp: null }).set(mapKey(network, channel), mapping);
    }
    if ((await op.commit()).ok) return { ok: true };
    for (const [network, channel] of entries) {
      const existing = await this.getMapping(network, channel);
      if (existing) return { ok: false, conflict: { network, existing } };
    }
    // Lost a race with a delete: the other side is free again, so try once more.
    return this.addMapping(mapping);
  }

  /** The mapping `channel` of `network` belongs to, if any. */
  async getMapping(network: string, channel: string): Promise<ChannelMapping | null> {
    return (await this.kv.get<ChannelMapping>(mapKey(network, channel))).value;
  }

  /** Removes the mapping of `channel` on both sides atomically; returns what was removed. */
  async removeMapping(network: string, channel: string): Promise<ChannelMapping | null> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await this.kv.get<ChannelMapping>(mapKey(network, channel));
      if (!entry.value) return null;
      const op = this.kv.atomic().check(entry);
      for (const [n, c] of Object.entries(entry.value.channels)) op.delete(mapKey(n, c));
      if ((await op.commit()).ok) return entry.value;
    }
    throw new Error(`could not remove the mapping of ${channel}: it kept changing underneath`);
  }

  /** Every mapping, each once. */
  async listMappings(): Promise<ChannelMapping[]> {
    const seen = new Set<string>();
    const out: ChannelMapping[] = [];
    for await (const entry of this.kv.list<ChannelMapping>({ prefix: ["channel_map"] })) {
      const id = JSON.stringify(Object.entries(entry.value.channels).sort());
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(entry.value);
    }
    return out;
  }

  // --- message id map ---

  /** Records a bridged message and indexes every id it has on every network, atomically. */
  async saveLink(link: MessageLink): Promise<void> {
    const op = this.kv.atomic().set(linkKey(link.id), link);
    for (const [network, ref] of Object.entries(link.refs)) {
      for (const id of ref.ids) op.set(msgKey(network, ref.channel, id), link.id);
    }
    const res = await op.commit();
    if (!res.ok) throw new Error("could not record the message id map entry");
  }

  /** The bridged message that `id` names in `channel` of `network`, if it was bridged. */
  async findLink(network: string, channel: string, id: string): Promise<MessageLink | null> {
    const linkId = (await this.kv.get<string>(msgKey(network, channel, id))).value;
    if (!linkId) return null;
    return (await this.kv.get<MessageLink>(linkKey(linkId))).value;
  }

  /**
   * What routing an event from `channel` of `network` needs to know, in one KV read for the whole event (one per
   * ten keys) rather than one per question: the channel's mapping, the bridged message the first of `ids` that
   * is in the id map names, and, for `seenEventId`, whether that event was handled ({@link eventSeen}). Read per
   * event, never cached: another process (`mmxmpp mappings unmap`) may change the mappings while the bridge runs.
   */
  async routeFacts(
    network: string,
    channel: string,
    ids: readonly string[],
    seenEventId?: string,
  ): Promise<RouteFacts> {
    const keys: Deno.KvKey[] = [mapKey(network, channel), ...ids.map((id) => msgKey(network, channel, id))];
    if (seenEventId !== undefined) keys.push(eventSeenKey({ network, channel, eventId: seenEventId }));
    const entries: Deno.KvEntryMaybe<unknown>[] = [];
    // Deno KV reads at most 10 keys at once; an event has a few ids.
    for (let i = 0; i < keys.length; i += GET_MANY_MAX) {
      entries.push(...await this.kv.getMany(keys.slice(i, i + GET_MANY_MAX)));
    }
    let link: MessageLink | null = null;
    for (const e of entries.slice(1, 1 + ids.length)) {
      if (typeof e.value !== "string") continue;
      link = (await this.kv.get<MessageLink>(linkKey(e.value))).value;
      if (link) break;
    }
    return {
      mapping: entries[0].value as ChannelMapping | null,
      link,
      seen: seenEventId !== undefined && entries[1 + ids.length].value !== null,
    };
  }

  /**
   * Adds `newId` as another name for the message `knownId` names in `channel`, and, when `name` is given, as that
   * named id of the part `knownId` names (of the only part, when no part names it). Returns false when `knownId` is
   * not known (yet).
   */
  async addAlias(
    network: string,
    channel: string,
    knownId: string,
    newId: string,
    name?: IdName,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const linkId = (await this.kv.get<string>(msgKey(network, channel, knownId))).value;
      if (!linkId) return false;
      const entry = await this.kv.get<MessageLink>(linkKey(linkId));
      const link = entry.value;
      const ref = link?.refs[network];
      if (!link || !ref) return false;
      const parts = name ? nameInParts(ref.parts, knownId, name, newId) : ref.parts;
      if (ref.ids.includes(newId) && parts === ref.parts) return true;
      const ids = ref.ids.includes(newId) ? ref.ids : [...ref.ids, newId];
      const updated: MessageLink = { ...link, refs: { ...link.refs, [network]: { ...ref, ids, parts } } };
      const res = await this.kv.atomic().check(entry).set(linkKey(linkId), updated)
        .set(msgKey(network, channel, newId), linkId).commit();
      if (res.ok) return true;
    }
    return false;
  }

  // --- outbox ---

  /**
   * Applies `writes` in one atomic commit: all or nothing. Throws when the commit fails or exceeds Deno KV's limits
   * (64 KiB a value, 1,000 mutations, 800 KiB in all).
   */
  async writeBatch(writes: readonly BatchWrite[]): Promise<void> {
    const op = this.kv.atomic();
    for (const w of writes) {
      if (w.kind === "accept") op.set(outboxKey(w.entry), w.entry);
      else if (w.kind === "seen") op.set(eventSeenKey(w.event), true, { expireIn: EVENT_SEEN_TTL_MS });
      else {
        op.set(linkKey(w.link.id), w.link);
        for (const [network, ref] of Object.entries(w.link.refs)) {
          for (const id of ref.ids) op.set(msgKey(network, ref.channel, id), w.link.id);
        }
        if (w.entry) op.delete(outboxKey(w.entry));
      }
    }
    if (!(await op.commit()).ok) throw new Error("could not write to the outbox and id map");
  }

  /** Every delivery left in the outbox, per target network and channel in `seq` order. */
  async listOutbox(): Promise<OutboxEntry[]> {
    const out: OutboxEntry[] = [];
    for await (const e of this.kv.list<OutboxEntry>({ prefix: ["outbox"] })) out.push(e.value);
    return out;
  }

  // --- handled events ---

  /** Whether the event `eventId` of `channel` on `network` was handled (within {@link EVENT_SEEN_TTL_MS}). */
  async eventSeen(network: string, channel: string, eventId: string): Promise<boolean> {
    return (await this.kv.get(eventSeenKey({ network, channel, eventId }))).value !== null;
  }

  // --- cursors ---

  /** How far `channel` of `network` was read, or undefined when the bridge never recorded it. */
  async getCursor(network: string, channel: string): Promise<number | undefined> {
    const value = (await this.kv.get<number>(cursorKey(network, channel))).value;
    return typeof value === "number" && Number.isFinite(value) ? value : undefined;
  }

  /** Records several channels' cursors of `network` in one atomic commit. */
  async setCursors(network: string, cursors: ReadonlyMap<string, number>): Promise<void> {
    const op = this.kv.atomic();
    for (const [channel, position] of cursors) op.set(cursorKey(network, channel), position);
    await op.commit();
  }

  // --- reaction sets ---

  /**
   * Records `emojis` as the reactions of `sender` (of its network) on the message `messageId` of `channel` on
   * `network`; an empty set forgets them.
   */
  async setReactions(
    network: string,
    channel: string,
    messageId: string,
    sender: { network: string; id: string },
    emojis: readonly string[],
  ): Promise<void> {
    const key = reactionsKey(network, channel, messageId, sender.network, sender.id);
    if (emojis.length === 0) await this.kv.delete(key);
    else await this.kv.set(key, [...emojis]);
  }

  /** Every sender's recorded reactions on the message `messageId` of `channel` on `network`, in key order. */
  async listReactions(network: string, channel: string, messageId: string): Promise<string[][]> {
    const out: string[][] = [];
    for await (const e of this.kv.list<string[]>({ prefix: ["reactions", network, channel, messageId] })) {
      out.push(e.value);
    }
    return out;
  }

  // --- avatars ---

  /**
   * The version of the picture of `userId` of `network` that its stand-in `where` (a ghost's JID, a puppet's user id)
   * last showed, if any.
   */
  async getAvatarShown(network: string, userId: string, where: string): Promise<string | undefined> {
    return (await this.kv.get<string>(avatarShownKey(network, userId, where))).value ?? undefined;
  }

  /** Records that the stand-in `where` of `userId` of `network` shows version `version` of their picture. */
  async setAvatarShown(network: string, userId: string, where: string, version: string): Promise<void> {
    await this.kv.set(avatarShownKey(network, userId, where), version);
  }

  // --- ghosts ---

  /** The ghost of the user `userId` of `network`, if one was created. */
  async getGhost(network: string, userId: string): Promise<GhostRecord | null> {
    return (await this.kv.get<GhostRecord>(ghostKey(network, userId))).value;
  }

  /** Which user a ghost JID belongs to, if any. */
  async ghostOwner(jid: string): Promise<GhostOwner | null> {
    return (await this.kv.get<GhostOwner>(ghostJidKey(jid))).value;
  }

  /**
   * Records a new ghost. Fails (returns false) when the user already has one or the JID is taken, so a ghost's JID,
   * once stored, never changes.
   */
  async createGhost(record: GhostRecord): Promise<boolean> {
    const key = ghostKey(record.network, record.userId);
    const owner: GhostOwner = { network: record.network, userId: record.userId };
    const res = await this.kv.atomic()
      .check({ key, versionstamp: null })
      .check({ key: ghostJidKey(record.jid), versionstamp: null })
      .set(key, record)
      .set(ghostJidKey(record.jid), owner)
      .commit();
    return res.ok;
  }

  // --- puppets ---

  /** The puppet of the user `identity` of `network`, if one was made. */
  async getPuppet(network: string, identity: string): Promise<PuppetRecord | null> {
    return (await this.kv.get<PuppetRecord>(puppetKey(network, identity))).value;
  }

  /** Which user the puppet user `userId` stands for, if it is one. */
  async puppetOwner(userId: string): Promise<PuppetOwner | null> {
    return (await this.kv.get<PuppetOwner>(puppetUserKey(userId))).value;
  }

  /**
   * Records a new puppet. Fails (returns false) when the user already has one or the puppet user stands for someone
   * else, so that a user never gets two puppets.
   */
  async createPuppet(record: PuppetRecord): Promise<boolean> {
    const key = puppetKey(record.network, record.identity);
    const owner: PuppetOwner = { network: record.network, identity: record.identity };
    const res = await this.kv.atomic()
      .check({ key, versionstamp: null })
      .check({ key: puppetUserKey(record.userId), versionstamp: null })
      .set(key, record)
      .set(puppetUserKey(record.userId), owner)
      .commit();
    return res.ok;
  }

  /** Replaces the record of an existing puppet (its token, name, channels); its user id never changes. */
  async updatePuppet(record: PuppetRecord): Promise<void> {
    await this.kv.set(puppetKey(record.network, record.identity), record);
  }

  /** Every puppet, of users of any network. */
  async listPuppets(): Promise<PuppetRecord[]> {
    const out: PuppetRecord[] = [];
    for await (const e of this.kv.list<PuppetRecord>({ prefix: ["puppet"] })) out.push(e.value);
    return out;
  }

  /** Forgets the ghost of the user `userId` of `network` (after its registration was cancelled). */
  async deleteGhost(network: string, userId: string): Promise<void> {
    const record = await this.getGhost(network, userId);
    if (!record) return;
    await this.kv.atomic().delete(ghostKey(network, userId)).delete(ghostJidKey(record.jid)).commit();
  }
}

function avatarShownKey(network: string, userId: string, where: string): Deno.KvKey {
  return ["avatar_shown", network, userId, where];
}

function puppetKey(network: string, identity: string): Deno.KvKey {
  return ["puppet", network, identity];
}

function puppetUserKey(userId: string): Deno.KvKey {
  return ["puppet_user", userId];
}

function mapKey(network: string, channel: string): Deno.KvKey {
  return ["channel_map", network, channel];
}

function msgKey(network: string, channel: string, id: string): Deno.KvKey {
  return ["msg", network, channel, id];
}

function linkKey(linkId: string): Deno.KvKey {
  return ["msg_link", linkId];
}

function outboxKey(entry: OutboxEntry): Deno.KvKey {
  return ["outbox", entry.delivery.target, entry.delivery.targetChannel, entry.seq];
}

function eventSeenKey(e: SeenEvent): Deno.KvKey {
  return ["event_seen", e.network, e.channel, e.eventId];
}

function cursorKey(network: string, channel: string): Deno.KvKey {
  return ["cursor", network, channel];
}

function reactionsKey(
  network: string,
  channel: string,
  messageId: string,
  senderNetwork: string,
  senderId: string,
): Deno.KvKey {
  return ["reactions", network, channel, messageId, senderNetwork, senderId];
}

function ghostKey(network: string, userId: string): Deno.KvKey {
  return ["ghost", network, userId];
}

function ghostJidKey(jid: string): Deno.KvKey {
  return ["ghost_jid", jid];
}

/**
 * `parts` with `name` set to `value` on the part one of whose named ids is `knownId` (on the only part when none
 * is), unless that part already has it; the same array when nothing changes.
 */
function nameInParts(parts: MessagePart[], knownId: string, name: IdName, value: string): MessagePart[] {
  const named = (p: MessagePart) =>
    p.messageId === knownId || p.originId === knownId || p.stanzaId === knownId || p.postId === knownId;
  let index = parts.findIndex(named);
  if (index < 0 && parts.length === 1) index = 0;
  if (index < 0 || parts[index][name] !== undefined) return parts;
  return parts.map((p, i) => i === index ? { ...p, [name]: value } : p);
}
