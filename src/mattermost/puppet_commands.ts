/**
 * The puppets' admin commands, typed as `/xmppbridge puppets` and `/xmppbridge puppet-cleanup`: the Mattermost
 * connector answers them itself (puppets are Mattermost users; the core knows none), and hands every other command
 * to the core, adding these two to its `help`.
 *
 * @module
 */
import { errorMessage } from "../core/errors.ts";
import type { MattermostPuppets } from "./puppets.ts";

/** The usage lines of the puppet commands, added to the core's `help`. */
export const PUPPET_USAGE = [
  "- `puppets`: the Mattermost users that stand in for XMPP users",
  "- `puppet-cleanup`: deactivate the puppets of XMPP users no longer in any mapped room",
].join("\n");

/** What the commands need besides the puppets. */
export interface PuppetCommandHost {
  /** The mapped Mattermost channels. */
  mappedChannels(): Promise<string[]>;
  /** Runs the command in the core (not a puppet command). */
  core(): Promise<string>;
}

/**
 * Answers `text` when it is a puppet command, else the core's answer (with the puppet commands added to `help`).
 * Only called for admins. Never throws: a failure becomes a reply saying what went wrong.
 */
export async function runPuppetCommand(
  puppets: MattermostPuppets,
  text: string,
  host: PuppetCommandHost,
): Promise<string> {
  const [verb = "", ...args] = text.trim().split(/\s+/).filter((w) => w !== "");
  switch (verb.toLowerCase()) {
    case "puppets":
      return args.length > 0 ? "Usage: `puppets` (no arguments)." : listing(puppets);
    case "puppet-cleanup":
      if (args.length > 0) return "Usage: `puppet-cleanup` (no arguments).";
      try {
        return cleanupReply(await puppets.cleanup(await host.mappedChannels()));
      } catch (err) {
        return `Error: ${errorMessage(err)}`;
      }
    case "help":
    case "":
      return `${await host.core()}\n${PUPPET_USAGE}`;
    default:
      return await host.core();
  }
}

function listing(puppets: MattermostPuppets): string {
  const mode = puppets.mode;
  const note = mode.kind === "fallback"
    ? `\nThey cannot post: ${mode.reason}; the bot posts for XMPP users.`
    : "";
  const all = puppets.list();
  if (all.length === 0) return `No puppets yet.${note}`;
  const lines = all.map((p) =>
    `- @${p.username} (${p.displayName}): ${p.active ? `in ${p.channels} mapped channel(s)` : "deactivated"}`
  );
  return [`${all.length} puppet(s):`, ...lines].join("\n") + note;
}

function cleanupReply(result: { deactivated: string[]; failed: string[] }): string {
  const lines = [
    result.deactivated.length === 0
      ? "No puppet to deactivate: every active puppet's XMPP user is in a mapped room."
      : `Deactivated ${result.deactivated.length} puppet(s): ${
        result.deactivated.map((u) => `@${u}`).join(", ")
      }.`,
  ];
  if (result.failed.length > 0) {
    lines.push(
      `Could not deactivate ${
        result.failed.map((u) => `@${u}`).join(", ")
      } (see the bridge's log); try again.`,
    );
  }
  return lines.join("\n");
}
