/**
 * The `/xmppbridge` slash command: registration through the API, and the callback Mattermost calls.
 *
 * The callback trusts nothing in the request until the command token (sent as `Authorization: Token …`)
 * matches, in constant time, a token of our own command; admin rights are then read from the server, not from
 * the request. Tokens are read from the server at start and again, at most every 30 s, when an unknown token
 * arrives: a token regenerated in the System Console then works at once and the old one stops working.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import { errorMessage } from "../core/errors.ts";
import { call, type Client4, statusOf } from "./api.ts";

const log = getLogger(["mmxmpp", "mattermost", "command"]);

/** The command's trigger word. */
export const TRIGGER = "xmppbridge";
/** Path of the callback on the bridge's HTTP listener. */
export const CALLBACK_PATH = "/mattermost/command";
/** The permission a bot needs to register the command or read its token (`model/role.go`). */
export const MANAGE_PERMISSION = "manage_slash_commands";
/** Least time between two re-reads of the command's token that an unknown token triggers. */
export const TOKEN_REFRESH_INTERVAL_MS = 30_000;

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
  /** Token of a command an admin created by hand (`MM_COMMAND_TOKEN`); always accepted. */
  staticToken?: string;
  run: CommandRunner;
}

/**
 * What to do when the bot lacks {@link MANAGE_PERMISSION}: the two ways out. Shared by the bridge's warning and
 * the doctor.
 */
export function managePermissionFix(team: string | undefined, callbackUrl: string | undefined): string {
  const where = team ? `team ${team}` : "the team";
  return `either give the bot the permission ${MANAGE_PERMISSION} in ${where} (e.g. make it a team admin: ` +
    `System Console → User Management → Teams → ${
      team ?? "the team"
    } → Manage Members → Make Team Admin) and ` +
    `restart, or create /${TRIGGER} by hand (Integrations → Slash Commands${
      callbackUrl ? `, request URL ${callbackUrl}` : ""
    }) and set MM_COMMAND_TOKEN to its token`;
}

/** Registers the command and serves its callback. */
export class SlashCommand {
  /** Tokens read from the server; each successful read replaces them all. */
  private learned = new Set<string>();
  private lastRefresh = Number.NEGATIVE_INFINITY;
  private refreshing?: Promise<void>;
  /** The permission warning was logged: later failures for the same reason go to debug. */
  private warned = false;

  constructor(private readonly opts: SlashCommandOptions) {}

  /**
   * With a public URL, creates the command in the team or points an existing one at us (keeping its token).
   * Without one, learns the tokens of `/xmppbridge` commands an admin made by hand. Never throws: without the
   * command the bridge still bridges, so a failure is logged once with what to do.
   */
  async setup(): Promise<void> {
    if (this.opts.publicUrl && this.opts.team) {
      try {
        await this.register(this.opts.team, this.opts.publicUrl);
      } catch (err) {
        this.warn(err, "register");
      }
    } else {
      await this.refresh();
    }
  }

  private async register(teamName: string, publicUrl: string): Promise<void> {
    const { client } = this.opts;
    const team = await this.findTeam(teamName);
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
    this.learned = new Set([saved.token]);
    log.info("{action} slash command /{trigger} in team {team} calling {url}", {
      action: existing ? "Updated" : "Created",
      trigger: TRIGGER,
      team: teamName,
      url,
    });
  }

  private async findTeam(name: string): Promise<{ id: string }> {
    try {
      return await call(`find team ${name} (MM_TEAM)`, () => this.opts.client.getTeamByName(name));
    } catch (err) {
      const status = statusOf(err);
      if (status === 403 || status === 404) throw new TeamNotVisible(name, status);
      throw err;
    }
  }

  /** Re-reads the tokens of the `/xmppbridge` commands and replaces the learned ones; a failure keeps them. */
  private async refresh(): Promise<void> {
    const { client } = this.opts;
    try {
      const teams = this.opts.team
        ? [await this.findTeam(this.opts.team)]
        : await call("list the bot's teams", () => client.getMyTeams());
      const tokens = new Set<string>();
      for (const team of teams) {
        const commands = await call("list slash commands", () => client.getCustomTeamCommands(team.id));
        for (const c of commands) if (c.trigger === TRIGGER && c.token) tokens.add(c.token);
      }
      this.learned = tokens;
    } catch (err) {
      this.warn(err, "read");
    }
  }

  /** Logs why the command could not be registered or read: once at warning level, then at debug. */
  private warn(err: unknown, doing: "register" | "read"): void {
    const status = statusOf(err);
    const what = doing === "register" ? `register /${TRIGGER}` : `read the /${TRIGGER} command's token`;
    const callbackUrl = this.opts.publicUrl ? this.opts.publicUrl + CALLBACK_PATH : undefined;
    const staticNote = this.opts.staticToken
      ? "; the command made by hand is still accepted with MM_COMMAND_TOKEN"
      : "; the bridge runs without it";
    let message: string;
    let props: Record<string, unknown>;
    if (err instanceof TeamNotVisible) {
      message = "Cannot {what}: team {team} (MM_TEAM) does not exist or the bot is not a member " +
        "(Mattermost answered {status}){note}. To fix it, add the bot to the team (System Console → User " +
        "Management → Teams → {team} → Add Members) or correct MM_TEAM";
      props = { what, team: err.team, status: err.status, note: staticNote };
    } else if (status === 403 || status === 404) {
      // 403 to list or create, 404 to update: the server hides commands from those who may not manage them.
      message =
        "Cannot {what}: the bot lacks the permission {permission} in team {team} (Mattermost answered " +
        "{status}){note}. To fix it, {fix}";
      props = {
        what,
        permission: MANAGE_PERMISSION,
        team: this.opts.team ?? "(its teams)",
        status,
        note: staticNote,
        fix: managePermissionFix(this.opts.team, callbackUrl),
      };
    } else if (status === 501) {
      message = "Cannot {what}: custom slash commands are disabled on the server{note}. To fix it, turn on " +
        "System Console → Integrations → Integration Management → Enable Custom Slash Commands";
      props = { what, note: staticNote };
    } else {
      message = "Cannot {what}{note}: {error}";
      props = { what, note: staticNote, error: errorMessage(err) };
    }
    if (this.warned) log.debug(message, props);
    else log.warn(message, props);
    this.warned = true;
  }

  /**
   * Handles Mattermost's call to the callback: a form POST, or for a command made by hand with method GET, a
   * GET with the same fields in the query string.
   */
  async handle(req: Request): Promise<Response> {
    let form: URLSearchParams;
    try {
      form = req.method === "GET" ? new URL(req.url).searchParams : new URLSearchParams(await req.text());
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

  /**
   * A known token passes. An unknown one may be the command's regenerated token: re-read the tokens (at most
   * every {@link TOKEN_REFRESH_INTERVAL_MS}, so forged calls cannot flood the server; callers arriving during a
   * re-read wait for it) and check again.
   */
  private async verify(token: string): Promise<boolean> {
    if (token === "") return false;
    if (this.matches(token)) return true;
    if (!this.refreshing) {
      if (Date.now() - this.lastRefresh < TOKEN_REFRESH_INTERVAL_MS) return false;
      this.lastRefresh = Date.now();
      this.refreshing = this.refresh().finally(() => this.refreshing = undefined);
    }
    await this.refreshing;
    return this.matches(token);
  }

  private matches(token: string): boolean {
    const given = digest(token);
    const known = this.opts.staticToken ? [this.opts.staticToken, ...this.learned] : [...this.learned];
    let ok = false;
    for (const k of known) ok = timingSafeEqual(given, digest(k)) || ok;
    return ok;
  }
}

/** The bot cannot see the team: it does not exist, or the bot is not a member of a team that is not open. */
class TeamNotVisible extends Error {
  constructor(readonly team: string, readonly status: number) {
    super(`team ${team} is not visible to the bot (HTTP ${status})`);
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
