/**
 * Custom slash commands: CRUD with the real validation, and executing one the way Mattermost calls an
 * integration (form POST with `Authorization: Token …`) and handles its reply.
 *
 * @module
 */

import { AppError, invalidBodyParam, invalidParam, invalidUrlParam, permissionError } from "./app_error.ts";
import type { App } from "./app.ts";
import { newEvent } from "./events.ts";
import { isValidId, newId } from "./ids.ts";
import type { Channel, Command, User } from "./model.ts";
import { hasChannelPermission, hasTeamPermission } from "./permissions.ts";
import { createPost, postView } from "./posts.ts";

/** Triggers of the server's built-in commands; a custom command may not reuse them. */
const BUILT_IN_TRIGGERS = new Set([
  "away",
  "code",
  "collapse",
  "custom_status",
  "dnd",
  "echo",
  "expand",
  "groupmsg",
  "header",
  "help",
  "invite",
  "invite_people",
  "join",
  "kick",
  "leave",
  "logout",
  "me",
  "msg",
  "mute",
  "offline",
  "online",
  "open",
  "purpose",
  "remove",
  "rename",
  "search",
  "settings",
  "shortcuts",
  "shrug",
  "status",
]);
const INTEGRATION_TIMEOUT_MS = 30_000;

function commandsDisabled(): AppError {
  return new AppError(
    "api.command.disabled.app_error",
    "Commands have been disabled by the system admin.",
    501,
  );
}

function invalidCommand(field: string): AppError {
  return new AppError(`model.command.is_valid.${field}.app_error`, `Invalid ${field}.`, 400);
}

/** `c.SetCommandNotFoundError()`: also what a caller without the permission gets, so ids do not leak. */
function commandNotFound(): AppError {
  return new AppError("store.sql_command.save.get.app_error", "Unable to get the command.", 404);
}

/** `model.IsValidHTTPURL`: an `http://` or `https://` prefix and a host. */
function isHttpUrl(value: string): boolean {
  if (!value.startsWith("http://") && !value.startsWith("https://")) return false;
  try {
    return new URL(value).host !== "";
  } catch {
    return false;
  }
}

/** Go's `len()` counts bytes. */
function byteLength(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** Lengths of the `Commands` table's columns the model does not check (`000012_create_commands.up.sql`). */
const COLUMN_LIMITS = { username: 64, icon_url: 1024, auto_complete_desc: 1024, auto_complete_hint: 1024 };

type CommandFields = Omit<
  Command,
  "id" | "token" | "create_at" | "update_at" | "delete_at" | "creator_id" | "team_id" | "plugin_id"
>;

/** The user-settable fields of a command as sent, trigger lowercased (`createCommand`/`UpdateCommand`). */
function readFields(input: Record<string, unknown>): CommandFields {
  const str = (key: string) => (typeof input[key] === "string" ? input[key] as string : "");
  return {
    trigger: str("trigger").toLowerCase(),
    url: str("url"),
    method: str("method") as "P" | "G",
    username: str("username"),
    icon_url: str("icon_url"),
    auto_complete: input.auto_complete === true,
    auto_complete_desc: str("auto_complete_desc"),
    auto_complete_hint: str("auto_complete_hint"),
    display_name: str("display_name"),
    description: str("description"),
  };
}

/**
 * `Command.IsValid` (400 `model.command.is_valid.*`), then the database's column lengths, which the model
 * leaves unchecked: too long a username, icon URL or autocomplete text fails the insert (500 `internalId`).
 */
function validateFields(teamId: string, fields: CommandFields, internalId: string): void {
  if (!isValidId(teamId)) throw invalidCommand("team_id");
  const trigger = byteLength(fields.trigger);
  if (trigger < 1 || trigger > 128 || fields.trigger.startsWith("/") || fields.trigger.includes(" ")) {
    throw invalidCommand("trigger");
  }
  if (fields.url === "" || byteLength(fields.url) > 1024) throw invalidCommand("url");
  if (!isHttpUrl(fields.url)) throw invalidCommand("url_http");
  if (fields.method !== "P" && fields.method !== "G") throw invalidCommand("method");
  if (byteLength(fields.display_name) > 64) throw invalidCommand("display_name");
  if (byteLength(fields.description) > 128) throw invalidCommand("description");
  for (const [key, max] of Object.entries(COLUMN_LIMITS)) {
    if ([...fields[key as keyof typeof COLUMN_LIMITS]].length > max) {
      throw new AppError(internalId, "We couldn't save the command.", 500, `${key}: value too long`);
    }
  }
}

/** `validateCommandTriggerUniqueness`: built-in triggers and the team's other commands are taken. */
function requireUniqueTrigger(app: App, teamId: string, trigger: string, exceptId = ""): void {
  if (
    BUILT_IN_TRIGGERS.has(trigger) ||
    teamCommands(app, teamId).some((c) => c.id !== exceptId && c.trigger === trigger)
  ) {
    throw new AppError(
      "api.command.duplicate_trigger.app_error",
      "This trigger word is already in use.",
      400,
    );
  }
}

function requireEnabled(app: App): void {
  if (!app.config.enableCommands) throw commandsDisabled();
}

/**
 * A live command by id, as `GetCommand`; any failure, commands being disabled included, is the API's 404.
 */
export function requireCommand(app: App, commandId: string): Command {
  if (!isValidId(commandId)) throw invalidUrlParam("command_id");
  const cmd = app.store.commands.get(commandId);
  if (!app.config.enableCommands || !cmd || cmd.delete_at !== 0) throw commandNotFound();
  return cmd;
}

/** Live custom commands of a team. */
export function teamCommands(app: App, teamId: string): Command[] {
  return [...app.store.commands.values()].filter((c) => c.team_id === teamId && c.delete_at === 0);
}

/** `Command.Sanitize`: what a command looks like in the autocomplete listing. */
function sanitized(cmd: Command): Command {
  return { ...cmd, token: "", creator_id: "", method: "" as "P", url: "", username: "", icon_url: "" };
}

/**
 * `GET /commands?team_id=…`: 400 without a team id, 403 without `view_team`. With `custom_only=true` it
 * needs `manage_slash_commands` (403) and returns the team's commands with their tokens; without, callers
 * who lack it see only autocomplete commands, sanitized (the built-in ones are not modelled).
 */
export function listCommands(app: App, actor: User, teamId: string, customOnly: boolean): Command[] {
  if (teamId === "") throw invalidParam("team_id");
  if (!hasTeamPermission(app.store, actor, teamId, "view_team")) throw permissionError("view_team");
  const mayManage = hasTeamPermission(app.store, actor, teamId, "manage_slash_commands");
  if (customOnly) {
    if (!mayManage) throw permissionError("manage_slash_commands");
    return teamCommands(app, teamId).map((c) => ({ ...c }));
  }
  return teamCommands(app, teamId).filter((c) => mayManage || c.auto_complete).map(sanitized);
}

/**
 * Create a command (`POST /commands`): `manage_slash_commands` in the team first (403, also for an empty
 * team id), then 501 when commands are disabled, then the lowercased trigger must not repeat a built-in or
 * another command of the team (400), then `Command.IsValid`. Returns it with its new `token`.
 */
export function createCommand(app: App, actor: User, input: Record<string, unknown>): Command {
  const teamId = typeof input.team_id === "string" ? input.team_id : "";
  if (!hasTeamPermission(app.store, actor, teamId, "manage_slash_commands")) {
    throw permissionError("manage_slash_commands");
  }
  requireEnabled(app);
  const fields = readFields(input);
  requireUniqueTrigger(app, teamId, fields.trigger);
  validateFields(teamId, fields, "app.command.createcommand.internal_error");
  const now = app.store.clock.now();
  const cmd: Command = {
    id: newId(),
    token: newId(),
    create_at: now,
    update_at: now,
    delete_at: 0,
    creator_id: actor.id,
    team_id: teamId,
    plugin_id: "",
    ...fields,
  };
  app.store.commands.set(cmd.id, cmd);
  return { ...cmd };
}

/**
 * The checks shared by get, update, delete and token regeneration: without `manage_slash_commands` in the
 * command's team the command "does not exist" (404, so its existence does not leak); someone else's needs
 * `manage_others_slash_commands` (403, or 404 for `notFoundForOthers`).
 */
function requireManage(app: App, actor: User, cmd: Command, notFoundForOthers = false): void {
  if (!hasTeamPermission(app.store, actor, cmd.team_id, "manage_slash_commands")) throw commandNotFound();
  if (
    cmd.creator_id !== actor.id &&
    !hasTeamPermission(app.store, actor, cmd.team_id, "manage_others_slash_commands")
  ) {
    throw notFoundForOthers ? commandNotFound() : permissionError("manage_others_slash_commands");
  }
}

/** Read one command (`GET /commands/{id}`), token included; 404 for callers who may not manage it. */
export function getCommand(app: App, actor: User, commandId: string): Command {
  const cmd = requireCommand(app, commandId);
  if (!hasTeamPermission(app.store, actor, cmd.team_id, "view_team")) throw commandNotFound();
  requireManage(app, actor, cmd, true);
  return { ...cmd };
}

/**
 * Update a command (`PUT /commands/{id}`): the body's `id` must match (400), the command must exist (404),
 * `team_id` cannot change (400, checked before the permission), then {@link requireManage}. Every settable
 * field is replaced by the body's; token, creator and creation time are kept.
 */
export function updateCommand(
  app: App,
  actor: User,
  commandId: string,
  input: Record<string, unknown>,
): Command {
  if (!isValidId(commandId)) throw invalidUrlParam("command_id");
  if (input.id !== commandId) throw invalidBodyParam("command");
  const cmd = requireCommand(app, commandId);
  if (input.team_id !== cmd.team_id) {
    throw new AppError("api.command.team_mismatch.app_error", "Unable to update commands across teams.", 400);
  }
  requireManage(app, actor, cmd);
  const fields = readFields(input);
  requireUniqueTrigger(app, cmd.team_id, fields.trigger, cmd.id);
  validateFields(cmd.team_id, fields, "app.command.updatecommand.internal_error");
  Object.assign(cmd, fields, { update_at: app.store.clock.now() });
  return { ...cmd };
}

/** Delete a command (`DELETE /commands/{id}`): 404 without `manage_slash_commands`. */
export function deleteCommand(app: App, actor: User, commandId: string): void {
  const cmd = requireCommand(app, commandId);
  requireManage(app, actor, cmd);
  cmd.delete_at = app.store.clock.now();
}

/**
 * Give a command a new token (`PUT /commands/{id}/regen_token`, what "Regenerate Token" in Integrations →
 * Slash Commands calls): the old token stops working at once. 404 without `manage_slash_commands`.
 */
export function regenCommandToken(app: App, actor: User, commandId: string): string {
  const cmd = requireCommand(app, commandId);
  requireManage(app, actor, cmd);
  cmd.token = newId();
  cmd.update_at = app.store.clock.now();
  return cmd.token;
}

/** What an integration answered: its HTTP status and its body (parsed JSON, else text). */
export interface CommandCallResult {
  status: number;
  body: unknown;
}

function isInternalAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1" || h.startsWith("fc") || h.startsWith("fd") || h.startsWith("fe80")) {
    return true;
  }
  const m = h.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a === 127 || a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) ||
    (a === 169 && b === 254);
}

/**
 * Call a command's integration as `user` typing `/trigger text` in `channel`, then act on the reply like
 * `HandleCommandResponse`: `in_channel` creates a post by the user with `from_webhook: "true"` (and the
 * command's username/icon overrides where allowed); an ephemeral text goes to the user alone as an
 * `ephemeral_message` event. `tokenOverride` forges the token in both the form and the header.
 */
export async function runCommand(
  app: App,
  user: User,
  channel: Channel,
  cmd: Command,
  text: string,
  tokenOverride?: string,
): Promise<CommandCallResult> {
  const url = new URL(cmd.url);
  if (
    isInternalAddress(url.hostname) && !app.config.allowedUntrustedInternalConnections.includes(url.hostname)
  ) {
    throw new AppError(
      "api.command.execute_command.failed.app_error",
      `Command with a trigger of '${cmd.trigger}' failed.`,
      500,
      `address forbidden, you may need to set AllowedUntrustedInternalConnections to allow an integration access to your internal network (${url.hostname})`,
    );
  }
  const team = app.store.teams.get(channel.team_id)!;
  const token = tokenOverride ?? cmd.token;
  const form = new URLSearchParams({
    token,
    team_id: team.id,
    team_domain: team.name,
    channel_id: channel.id,
    channel_name: channel.name,
    user_id: user.id,
    user_name: user.username,
    command: `/${cmd.trigger}`,
    text,
    trigger_id: btoa(`${newId()}:${user.id}:${Date.now()}`),
    response_url: `${app.config.siteUrl}/hooks/commands/${newId()}`,
  });
  const headers: Record<string, string> = { Accept: "application/json", Authorization: `Token ${token}` };
  let target = cmd.url;
  let body: string | undefined;
  if (cmd.method === "P") {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    body = form.toString();
  } else {
    target += (target.includes("?") ? "&" : "?") + form.toString();
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), INTEGRATION_TIMEOUT_MS);
  let status: number;
  let contentType: string;
  let raw: string;
  try {
    const resp = await fetch(target, {
      method: cmd.method === "P" ? "POST" : "GET",
      headers,
      body,
      signal: abort.signal,
    });
    status = resp.status;
    contentType = resp.headers.get("content-type") ?? "";
    raw = await resp.text();
  } finally {
    clearTimeout(timer);
  }
  let parsed: unknown = raw;
  if (contentType.startsWith("application/json")) {
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = raw;
    }
  }
  if (status === 200) handleCommandResponse(app, user, channel, cmd, parsed);
  return { status, body: parsed };
}

function handleCommandResponse(app: App, user: User, channel: Channel, cmd: Command, body: unknown): void {
  const response = typeof body === "string"
    ? { text: body }
    : (body && typeof body === "object" ? body as Record<string, unknown> : {});
  const text = typeof response.text === "string" ? response.text : "";
  const props: Record<string, unknown> = {
    ...(response.props && typeof response.props === "object"
      ? response.props as Record<string, unknown>
      : {}),
    from_webhook: "true",
  };
  const username = cmd.username || (typeof response.username === "string" ? response.username : "");
  const iconUrl = cmd.icon_url || (typeof response.icon_url === "string" ? response.icon_url : "");
  if (username) props.override_username = username;
  if (iconUrl) props.override_icon_url = iconUrl;
  if (response.response_type === "in_channel") {
    createPost(app, user, {
      channel_id: channel.id,
      message: text,
      props,
      type: typeof response.type === "string" ? response.type : "",
    });
    return;
  }
  if (text === "") return;
  const now = app.store.clock.now();
  const ephemeral = {
    ...postView(app.store, {
      id: newId(),
      create_at: now,
      update_at: now,
      edit_at: 0,
      delete_at: 0,
      is_pinned: false,
      user_id: user.id,
      channel_id: channel.id,
      root_id: "",
      original_id: "",
      message: text,
      type: "system_ephemeral",
      props,
      hashtags: "",
      pending_post_id: "",
      reply_count: 0,
      last_reply_at: 0,
      participants: null,
    }),
  };
  app.publish(
    newEvent("ephemeral_message", { post: JSON.stringify(ephemeral) }, {
      channelId: channel.id,
      userId: user.id,
    }),
  );
}

/** Find the command a `/trigger` names in a channel's team and check the user may use it there. */
export function resolveCommand(app: App, user: User, channel: Channel, trigger: string): Command {
  requireEnabled(app);
  if (!hasChannelPermission(app.store, user, channel)) throw permissionError("create_post");
  const cmd = teamCommands(app, channel.team_id).find((c) => c.trigger === trigger.toLowerCase());
  if (!cmd) {
    throw new AppError(
      "api.command.execute_command.not_found.app_error",
      `Command with a trigger of '${trigger}' not found.`,
      404,
    );
  }
  return cmd;
}
