/**
 * The bridge's admin commands (`map`, `unmap`, `status`, `list`, `help`), independent of how they were typed.
 *
 * @module
 */
import { BridgeError, errorMessage } from "./errors.ts";
import type { BridgeHealth } from "./bridge.ts";
import type { ChannelMapping } from "./store.ts";

/**
 * What the commands need from the running bridge. `BridgeManager` implements it; naming it here keeps the commands
 * from importing the manager, which imports them.
 */
export interface CommandHost {
  map(
    network: string,
    channel: string,
    peerRef: string,
    createdBy?: string,
  ): Promise<{ mapping: ChannelMapping; warnings: string[] }>;
  unmap(network: string, channel: string): Promise<ChannelMapping | null>;
  /** The one other network of a two-network bridge. */
  peerOf(network: string): { network: string };
  health(): BridgeHealth[];
  getMapping(network: string, channel: string): Promise<ChannelMapping | null>;
  listMappings(): Promise<ChannelMapping[]>;
}

/** A command as a connector received it. `isAdmin` comes from the network's authority, never from the text. */
export interface CommandInput {
  network: string;
  channel: string;
  userId: string;
  isAdmin: boolean;
  text: string;
}

/** Usage text; `{trigger}` is not known here, so commands are shown bare. */
export const USAGE = [
  "Bridge commands:",
  "- `map <room@service>`: bridge this channel to an XMPP room (the room must exist)",
  "- `unmap`: stop bridging this channel",
  "- `status`: connections and this channel's mapping",
  "- `list`: every mapping",
  "- `help`: this text",
].join("\n");

/**
 * Runs one command and returns the reply text. Never throws: every failure becomes a reply that says what went
 * wrong.
 */
export async function runCommand(manager: CommandHost, input: CommandInput): Promise<string> {
  if (!input.isAdmin) return "Only system admins may use bridge commands.";
  const [verb = "", ...args] = input.text.trim().split(/\s+/).filter((w) => w !== "");
  try {
    switch (verb.toLowerCase()) {
      case "map":
        return await map(manager, input, args);
      case "unmap":
        return await unmap(manager, input);
      case "status":
        return await status(manager, input);
      case "list":
        return await list(manager);
      case "help":
      case "":
        return USAGE;
      default:
        return `Unknown command \`${verb}\`.\n${USAGE}`;
    }
  } catch (err) {
    return err instanceof BridgeError ? `Error: ${err.message}` : `Error: ${errorMessage(err)}`;
  }
}

async function map(manager: CommandHost, input: CommandInput, args: string[]): Promise<string> {
  if (args.length !== 1) {
    return "Usage: `map <room@service>`, for example `map team-chat@conference.example.org`.";
  }
  const { mapping, warnings } = await manager.map(input.network, input.channel, args[0], input.userId);
  const peer = manager.peerOf(input.network).network;
  let reply = `Mapped this channel to ${peer} ${mapping.channels[peer]}.`;
  if (warnings.length > 0) reply += `\nWarning: the mapping is stored, but ${warnings.join("; ")}.`;
  return reply;
}

async function unmap(manager: CommandHost, input: CommandInput): Promise<string> {
  const removed = await manager.unmap(input.network, input.channel);
  if (!removed) return "This channel is not mapped.";
  const reply = `Unmapped this channel from ${describePeer(removed, input.network)}.`;
  // Static mappings follow BRIDGE_MAPPINGS at every start: without this, the unmap silently comes undone.
  return removed.origin === "static"
    ? `${reply} It comes from BRIDGE_MAPPINGS: remove the entry there too, or the next start maps it again.`
    : reply;
}

async function status(manager: CommandHost, input: CommandInput): Promise<string> {
  const lines = manager.health().map((h) =>
    `- ${h.network}: ${h.connected ? "connected" : "disconnected"} (${h.detail}) since ${
      new Date(h.since).toISOString()
    }`
  );
  const mapping = await manager.getMapping(input.network, input.channel);
  lines.push(
    mapping
      ? `This channel is mapped to ${describePeer(mapping, input.network)} (${mapping.origin}, since ${
        new Date(mapping.createdAt).toISOString()
      }).`
      : "This channel is not mapped.",
  );
  return lines.join("\n");
}

async function list(manager: CommandHost): Promise<string> {
  const mappings = await manager.listMappings();
  if (mappings.length === 0) return "No mappings.";
  return [
    `${mappings.length} mapping(s):`,
    ...mappings.map((m) =>
      "- " + Object.entries(m.channels).map(([n, c]) => `${n} ${c}`).join(" ↔ ") + ` (${m.origin})`
    ),
  ].join("\n");
}

function describePeer(mapping: ChannelMapping, network: string): string {
  return Object.entries(mapping.channels).filter(([n]) => n !== network).map(([n, c]) => `${n} ${c}`).join(
    ", ",
  );
}
