/**
 * Numbered schema migrations for the Deno KV store.
 *
 * The schema version lives under `["meta", "schema_version"]`. Each migration runs once, in order, and the version
 * is bumped right after it; since a crash between the two reruns the migration, every `up` must be idempotent.
 *
 * @module
 */

/** One schema step. `up` may read and write freely; it must be idempotent, since a crash can rerun it. */
export interface Migration {
  version: number;
  name: string;
  up(kv: Deno.Kv): Promise<void>;
}

/** Key of the stored schema version. */
export const SCHEMA_VERSION_KEY: Deno.KvKey = ["meta", "schema_version"];

/** The migrations of this release, oldest first. Append; never edit or renumber a released one. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema: channel_map, msg, msg_link, meta",
    // Version 1 is the first layout: nothing existed before it, so there is nothing to convert.
    up: () => Promise.resolve(),
  },
  {
    version: 2,
    name: "channel_map: every mapping has an origin; static ones may name their BRIDGE_MAPPINGS entry",
    // Static mappings now carry `source` (their BRIDGE_MAPPINGS entry); those stored before cannot get one here,
    // since the environment is not known to a migration: the next start adopts them when they equal a configured
    // entry and removes them otherwise (see BridgeManager). A mapping without a known origin cannot be told apart
    // from an admin's work, so it becomes "command": never removed by a start, only by an unmap.
    up: async (kv) => {
      for await (const entry of kv.list<Record<string, unknown>>({ prefix: ["channel_map"] })) {
        const origin = entry.value?.origin;
        if (origin === "static" || origin === "command") continue;
        await kv.atomic().check(entry).set(entry.key, { ...entry.value, origin: "command" }).commit();
      }
    },
  },
  {
    version: 3,
    name: "msg_link: typed parts per network; ghost records keyed by network",
    up: async (kv) => {
      await typeLinkParts(kv);
      await keyGhostsByNetwork(kv);
    },
  },
];

/**
 * Schema 3, links: each network's ref gains `parts`, named from what the connectors of schema 2 wrote. A
 * Mattermost id is a post id, one part each. On XMPP, a message the bridge sent has its origin-id (also its message
 * id) first and the room's stanza-id, when it came, second; a message written there has the room's stanza-id as
 * its only id without a `/` (the sender's own ids are kept as `nick/id`: lookup keys only). Who sent a part the
 * bridge made was not recorded: `unknown`. The ids and their index keys stay as they are.
 */
async function typeLinkParts(kv: Deno.Kv): Promise<void> {
  for await (const entry of kv.list<LegacyLink>({ prefix: ["msg_link"] })) {
    const link = entry.value;
    if (!link?.refs || Object.values(link.refs).every((ref) => Array.isArray(ref.parts))) continue;
    const refs: Record<string, LegacyRef & { parts: unknown[] }> = {};
    for (const [network, ref] of Object.entries(link.refs)) {
      refs[network] = Array.isArray(ref.parts)
        ? ref as LegacyRef & { parts: unknown[] }
        : { ...ref, parts: legacyParts(network, network === link.source, ref.ids ?? []) };
    }
    await kv.atomic().check(entry).set(entry.key, { ...link, refs }).commit();
  }
}

/** The parts of a schema-2 ref of `network`; see {@link typeLinkParts}. */
function legacyParts(network: string, isSource: boolean, ids: string[]): Record<string, unknown>[] {
  const sender = isSource ? { kind: "author" } : { kind: "unknown" };
  if (network === "mattermost") return ids.map((postId) => ({ postId, sender }));
  if (network !== "xmpp") return [{ sender }];
  if (isSource) {
    const stanzaId = ids.find((id) => !id.includes("/"));
    return [stanzaId ? { stanzaId, sender } : { sender }];
  }
  const [own, stanzaId] = ids;
  return [{ messageId: own, originId: own, ...(stanzaId ? { stanzaId } : {}), sender }];
}

/**
 * Schema 3, ghosts: `["ghost", userId]` becomes `["ghost", "mattermost", userId]` (every ghost of schema 2 stands
 * for a Mattermost user) with its `network`, and `["ghost_jid", jid]` names its owner as `{network, userId}`.
 */
async function keyGhostsByNetwork(kv: Deno.Kv): Promise<void> {
  const network = "mattermost";
  for await (const entry of kv.list<Record<string, unknown>>({ prefix: ["ghost"] })) {
    if (entry.key.length !== 2) continue;
    const userId = entry.key[1];
    await kv.atomic().check(entry).delete(entry.key)
      .set(["ghost", network, userId], { ...entry.value, network }).commit();
  }
  for await (const entry of kv.list<unknown>({ prefix: ["ghost_jid"] })) {
    if (typeof entry.value !== "string") continue;
    await kv.atomic().check(entry).set(entry.key, { network, userId: entry.value }).commit();
  }
}

/** A link as schema 2 stored it (and schema 3, with parts). */
interface LegacyLink {
  source: string;
  refs: Record<string, LegacyRef>;
}

interface LegacyRef {
  channel: string;
  ids?: string[];
  parts?: unknown[];
}

/**
 * Brings `kv` up to the newest schema in `migrations` and returns the resulting version.
 *
 * Refuses (throws) when the store was written by a newer mmxmpp, so that an older binary never damages it.
 *
 * @example
 * ```ts
 * const kv = await Deno.openKv(":memory:");
 * await migrate(kv); // 1
 * ```
 */
export async function migrate(kv: Deno.Kv, migrations: readonly Migration[] = MIGRATIONS): Promise<number> {
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  sorted.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new Error(`migration list is broken: expected version ${i + 1}, found ${m.version}`);
    }
  });
  const latest = sorted.at(-1)?.version ?? 0;
  const current = (await kv.get<number>(SCHEMA_VERSION_KEY)).value ?? 0;
  if (current > latest) {
    throw new Error(
      `the state store has schema version ${current}, but this mmxmpp knows only up to ${latest}: ` +
        "run a newer mmxmpp, or point BRIDGE_KV_PATH at another file",
    );
  }
  for (const m of sorted) {
    if (m.version <= current) continue;
    await m.up(kv);
    await kv.set(SCHEMA_VERSION_KEY, m.version);
  }
  return latest;
}
