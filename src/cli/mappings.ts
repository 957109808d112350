/**
 * `mmxmpp mappings list|unmap`: the mappings in the state file, read and removed offline, for admins who cannot
 * use the `/xmppbridge` slash command.
 *
 * The state file is Deno KV on SQLite, which two processes may open at once: this works while the bridge runs too.
 * A running bridge then stops bridging an unmapped pair with its next message (it looks mappings up per message),
 * but stays in the XMPP room until it restarts.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { commandName } from "./command.ts";
import { type ChannelMapping, Store } from "../core/store.ts";
import { errorMessage } from "../core/errors.ts";
import { defaultKvPath, stateDirectory } from "../config.ts";

/** Exit codes of this command: done, nothing to do it on (no state file, no such mapping), bad usage. */
const EXIT = { ok: 0, notFound: 1, usage: 2 } as const;

/** The usage text, naming the command the user ran. */
const usage = (command = commandName()) =>
  `Usage: ${command} mappings list [--json] [--kv PATH]
       ${command} mappings unmap CHANNEL_OR_ROOM [--kv PATH]

Reads or changes the bridge's mappings in its state file, without Mattermost or XMPP.

  list                 print every mapping: both sides, origin (static from BRIDGE_MAPPINGS, or made by
                       /xmppbridge map), and since when
  unmap CHANNEL_OR_ROOM
                       remove the mapping of an XMPP room (room@service), a Mattermost channel id, or the
                       Mattermost side of a BRIDGE_MAPPINGS entry as written there (team/channel)
  --kv PATH            the state file [default: BRIDGE_KV_PATH, else $STATE_DIRECTORY/mmxmpp.kv, else
                       ./data/mmxmpp.kv, as the bridge itself uses]
  --json               list as JSON

A static mapping (from BRIDGE_MAPPINGS) comes back at the bridge's next start unless its entry is removed there.
While the bridge runs, an unmapped pair stops being bridged at once, but the bridge stays in the room until it
restarts.

Exit codes: 0 done, 1 no state file or no such mapping, 2 bad usage.`;

/**
 * Runs `mmxmpp mappings …` with `args` (after `mappings`) and returns the exit code.
 *
 * @example
 * ```ts
 * const code = await runMappings(["unmap", "lobby@conference.example.org"], Deno.env.toObject());
 * ```
 */
export async function runMappings(args: string[], env: Record<string, string | undefined>): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { kv: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    console.error(`mmxmpp mappings: ${errorMessage(err)}. Try ${commandName()} mappings --help.`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  const [verb, ...rest] = positionals;
  if (values.help || verb === "help") {
    console.log(usage());
    return EXIT.ok;
  }
  const wanted = verb === "list" ? 0 : verb === "unmap" ? 1 : -1;
  if (wanted < 0 || rest.length !== wanted) {
    const problem = verb === undefined
      ? "say list or unmap"
      : wanted < 0
      ? `unknown subcommand "${verb}": use list or unmap`
      : verb === "unmap"
      ? "unmap takes one channel or room"
      : "list takes no argument";
    console.error(`mmxmpp mappings: ${problem}.\n\n${usage()}`);
    return EXIT.usage;
  }

  const { path, from } = statePath(values.kv, env);
  try {
    await Deno.stat(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    console.error(
      `mmxmpp mappings: there is no state file at ${path} (${from}). Point BRIDGE_KV_PATH (or --kv) at the ` +
        "bridge's state file: the path its own environment sets, /var/lib/mmxmpp/mmxmpp.kv with the systemd unit.",
    );
    return EXIT.notFound;
  }
  const store = await Store.open(path);
  try {
    const mappings = await store.listMappings();
    if (verb === "list") {
      if (values.json) console.log(JSON.stringify(mappings, null, 2));
      else console.log(describeAll(mappings, path));
      return EXIT.ok;
    }
    const target = rest[0].trim();
    const found = mappings.find((m) => matches(m, target));
    if (!found) {
      console.error(`mmxmpp mappings: no mapping has ${target}.\n${describeAll(mappings, path)}`);
      return EXIT.notFound;
    }
    const [network, channel] = Object.entries(found.channels)[0];
    await store.removeMapping(network, channel);
    console.log(`Removed the mapping ${describe(found)}.`);
    if (found.origin === "static") {
      const entry = found.source ? ` (entry ${sourceText(found.source)})` : "";
      console.log(
        `It comes from BRIDGE_MAPPINGS${entry}: remove it there too, or the bridge adds it again at its next start.`,
      );
    }
    console.log("A running bridge stops bridging this pair at once and leaves the room when it restarts.");
    return EXIT.ok;
  } finally {
    store.close();
  }
}

/** Where the state file is, and which setting said so, the way the bridge's configuration finds it. */
function statePath(
  flag: string | undefined,
  env: Record<string, string | undefined>,
): { path: string; from: string } {
  if (flag?.trim()) return { path: flag.trim(), from: "--kv" };
  const kvPath = env.BRIDGE_KV_PATH?.trim();
  if (kvPath) return { path: kvPath, from: "BRIDGE_KV_PATH" };
  return {
    path: defaultKvPath(env),
    from: stateDirectory(env)
      ? "STATE_DIRECTORY, since BRIDGE_KV_PATH is not set"
      : "the default, since BRIDGE_KV_PATH is not set",
  };
}

/** Whether `target` names a side of `mapping`: a channel id or room JID, or a reference as BRIDGE_MAPPINGS has it. */
function matches(mapping: ChannelMapping, target: string): boolean {
  const names = [...Object.values(mapping.channels), ...Object.values(mapping.source ?? {})];
  return names.some((n) => n === target || (n.includes("@") && n.toLowerCase() === target.toLowerCase()));
}

function describeAll(mappings: ChannelMapping[], path: string): string {
  if (mappings.length === 0) return `The state file ${path} holds no mappings.`;
  return [`${mappings.length} mapping(s) in ${path}:`, ...mappings.map((m) => `- ${describe(m)}`)].join("\n");
}

function describe(m: ChannelMapping): string {
  const pair = Object.entries(m.channels).map(([n, c]) => `${n} ${c}`).join(" ↔ ");
  const origin = m.origin === "static"
    ? `static, from BRIDGE_MAPPINGS${m.source ? ` entry ${sourceText(m.source)}` : ""}`
    : `made with /xmppbridge map${m.createdBy ? ` by user ${m.createdBy}` : ""}`;
  return `${pair} (${origin}, since ${new Date(m.createdAt).toISOString()})`;
}

function sourceText(source: Record<string, string>): string {
  return `"${source.mattermost}=${source.xmpp}"`;
}
