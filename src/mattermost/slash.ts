/**
 * The `/xmppbridge` slash command: registration through the API, and the callback Mattermost calls.
 *
 * The callback trusts nothing in the form until the command token (sent as `Authorization: Token …`) matches, in
 * constant time, a token of our own command; admin rights are then read from the server, not from the form.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../core/errors.ts";
import { call, type Client4 } from "./api.ts";

const log = getLogger(["mmxmpp", "mattermost", "command"]);

/** The command's trigger word. */
export const TRIGGER = "xmppbridge";
/** Path of the callback on the bridge's HTTP listener. */
export const CALLBACK_PATH = "/mattermost/command";

/** Runs a verified command for a user; answers the reply text. */
export type CommandRunner = (
  input: { channel: string; userId: string; isAdmin: boolean; text: string },
) => Promise<
  string
>;

/** Settings of {@link SlashCommand}. */
export interface SlashCommandOptions {
  client: Client4;
  /** Team to register the command in (`MM_TEAM`). */
  team?: string;
  /** When set, the command is created or updated to call `publicUrl` + CALLBACK_PATH. */
  publicUrl?: string;
  /** Token of a command an admin created by hand. */
  staticToken?: string;
  run: CommandRunner;
}

/** Registers the command and serves its callback. */
export class SlashCommand {
  private readonly tokens = new Set<string>();
  private lastDiscovery = 0;

  constructor(private readonly opts: SlashCommandOptions) {
    if (opts.staticToken) this.tokens.add(opts.staticToken);
  }

  /**
   * With a public URL, creates the command in the team or points an existing one at us (keeping its token).
   * Without one, learns the tokens of `/xmppbridge` commands an admin made by hand.
   */
  async setup(): Promise<void> {
    if (this.opts.publicUrl && this.opts.team) await this.register(this.opts.team, this.opts.publicUrl);
    else await this.discover();
  }

  private async register(teamName: string, publicUrl: string): Promise<void> {
    const { client } = this.opts;
    const team = await call(`find team ${teamName} (MM_TEAM)`, () => client.getTeamByName(teamName));
    const url = publicUrl + CALLBACK_PATH;
    const fields = {
      team_id: team.id,
      trigger: TRIGGER,
      method: "P" as const,
      url,
      auto_complete: true,
      auto_complete_desc: "Bridge this channel with an XMPP room: map, unmap, status, list, help",
      auto_complete_hint: "[map room@service | unmap | status | list | help]",
      display_name: "XMPP bridge",
      description: "Manage the Mattermost ↔ XMPP bridge (mmxmpp)",
      username: "xmppbridge",
    };
    const existing = (await call("list slash commands", () => client.getCustomTeamCommands(team.id)))
      .find((c: { trigger: string }) => c.trigger === TRIGGER);
    const saved = existing
      ? await call("update the /xmppbridge command", () => client.editCommand({ ...existing, ...fields }))
      : await call("create the /xmppbridge command", () => client.addCommand(fields as never));
    this.tokens.add(saved.token);
    log.info("{action} slash command /{trigger} in team {team} calling {url}", {
      action: existing ? "Updated" : "Created",
      trigger: TRIGGER,
      team: teamName,
      url,
    });
  }

  /** Learns tokens of existing /xmppbridge commands; at most once a minute. */
  private async discover(): Promise<void> {
    if (Date.now() - this.lastDiscovery < 60_000) return;
    this.lastDiscovery = Date.now();
    const { client } = this.opts;
    try {
      const teams = this.opts.team
        ? [await call(`find team ${this.opts.team}`, () => client.getTeamByName(this.opts.team!))]
        : await call("list the bot's teams", () => client.getMyTeams());
      for (const team of teams) {
        const commands = await call("list slash commands", () => client.getCustomTeamCommands(team.id));
        for (const c of commands) if (c.trigger === TRIGGER && c.token) this.tokens.add(c.token);
      }
    } catch (err) {
      log.warn("Could not look up /{trigger} commands: {error}", {
        trigger: TRIGGER,
        error: errorMessage(err),
      });
    }
  }

  /** Handles Mattermost's POST to the callback. */
  async handle(req: Request): Promise<Response> {
    let form: URLSearchParams;
    try {
      form = new URLSearchParams(await req.text());
    } catch {
      return reply("The request body could not be read.", 400);
    }
    const header = req.headers.get("Authorization") ?? "";
    const token = header.startsWith("Token ") ? header.slice(6).trim() : form.get("token") ?? "";
    if (!(await this.verify(token))) {
      log.warn("Refused a command callback with an invalid token from channel {channel}", {
        channel: form.get("channel_id") ?? "?",
      });
      return reply("Invalid command token.", 401);
    }
    const userId = form.get("user_id") ?? "";
    const channel = form.get("channel_id") ?? "";
    if (!userId || !channel) return reply("The callback lacks user_id or channel_id.", 400);
    let isAdmin = false;
    try {
      const user = await call("look up the user who ran the command", () => this.opts.client.getUser(userId));
      isAdmin = String(user.roles ?? "").split(" ").includes("system_admin");
    } catch (err) {
      return reply(`Could not check your permissions: ${errorMessage(err)}`);
    }
    const text = await this.opts.run({ channel, userId, isAdmin, text: form.get("text") ?? "" });
    return reply(text);
  }

  private async verify(token: string): Promise<boolean> {
    if (token === "") return false;
    if (this.matches(token)) return true;
    // An admin may have created or regenerated the command since we last looked.
    if (!this.opts.publicUrl) {
      await this.discover();
      return this.matches(token);
    }
    return false;
  }

  private matches(token: string): boolean {
    const given = digest(token);
    let ok = false;
    for (const known of this.tokens) ok = timingSafeEqual(given, digest(known)) || ok;
    return ok;
  }
}

/** Hashing first makes the comparison constant-time whatever the lengths. */
function digest(s: string): Uint8Array {
  return createHash("sha256").update(s).digest();
}

function reply(text: string, status = 200): Response {
  return new Response(JSON.stringify({ response_type: "ephemeral", text }), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}
