/**
 * Custom slash commands: CRUD with the real validation, and executing one the way Mattermost calls an
 * integration (form POST with `Authorization: Token …`) and handles its reply.
 *
 * @module
 */

import { AppError, invalidParam, invalidUrlParam, notFound, permissionError } from "./app_error.ts";
import type { App } from "./app.ts";
import { newEvent } from "./events.ts";
import { isValidId, newId } from "./ids.ts";
import type { Channel, Command, User } from "./model.ts";
import { canManageSlashCommands, hasChannelPermission } from "./permissions.ts";
import { createPost, postView } from "./posts.ts";
import { isSystemAdmin } from "./store.ts";

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

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

/** Normalize and check the user-settable fields of a command (`Command.IsValid`). */
function validateFields(
  input: Record<string, unknown>,
): Omit<
  Command,
  "id" | "token" | "create_at" | "update_at" | "delete_at" | "creator_id" | "team_id" | "plugin_id"
> {
  const str = (key: string) => (typeof input[key] === "string" ? input[key] as string : "");
  const trigger = str("trigger").toLowerCase();
  if (trigger.length < 1 || trigger.length > 128 || trigger.startsWith("/") || trigger.includes(" ")) {
    throw invalidCommand("trigger");
  }
  const url = str("url");
  if (url.length > 1024 || !isHttpUrl(url)) throw invalidCommand("url");
  const method = str("method");
  if (method !== "P" && method !== "G") throw invalidCommand("method");
  const fields = {
    trigger,
    url,
    method: method as "P" | "G",
    username: str("username"),
    icon_url: str("icon_url"),
    auto_complete: input.auto_complete === true,
    auto_complete_desc: str("auto_complete_desc"),
    auto_complete_hint: str("auto_complete_hint"),
    display_name: str("display_name"),
    description: str("description"),
  };
  if (fields.display_name.length > 64) throw invalidCommand("display_name");
  if (fields.description.length > 128) throw invalidCommand("description");
  if (fields.username.length > 64) throw invalidCommand("username");
  if (fields.icon_url.length > 1024) throw invalidCommand("icon_url");
  return fields;
}

function requireEnabled(app: App): void {
  if (!app.config.enableCommands) throw commandsDisabled();
}

function requireManage(app: App, actor: User, teamId: string): void {
  if (!isSystemAdmin(actor) && !app.store.isTeamMember(teamId, actor.id)) {
    throw permissionError("manage_slash_commands");
  }
  if (!canManageSlashCommands(actor)) throw permissionError("manage_slash_commands");
}

/** A live command by id, or 404. */
export function requireCommand(app: App, commandId: string): Command {
  if (!isValidId(commandId)) throw invalidUrlParam("command_id");
  const cmd = app.store.commands.get(commandId);
  if (!cmd || cmd.delete_at !== 0) throw notFound("app.command.getcommand.app_error", "command");
  return cmd;
}

/** Live custom commands of a team. */
export function teamCommands(app: App, teamId: string): Command[] {
  return [...app.store.commands.values()].filter((c) => c.team_id === teamId && c.delete_at === 0);
}

/**
 * Create a command (`POST /commands`): the trigger is lowercased and must not start with `/`, contain a
 * space, or repeat a built-in or another command of the team (400). Returns it with its new `token`.
 */
export function createCommand(app: App, actor: User, input: Record<string, unknown>): Command {
  requireEnabled(app);
  const teamId = typeof input.team_id === "string" ? input.team_id : "";
  if (!isValidId(teamId) || !app.store.teams.has(teamId)) throw invalidParam("team_id");
  requireManage(app, actor, teamId);
  const fields = validateFields(input);
  if (
    BUILT_IN_TRIGGERS.has(fields.trigger) ||
    teamCommands(app, teamId).some((c) => c.trigger === fields.trigger)
  ) {
    throw new AppError(
      "api.command.duplicate_trigger.app_error",
      "This trigger word is already in use.",
      400,
    );
  }
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

function requireOwnOrOthers(app: App, actor: User, cmd: Command): void {
  requireManage(app, actor, cmd.team_id);
  if (cmd.creator_id !== actor.id && !isSystemAdmin(actor)) {
    throw permissionError("manage_others_slash_commands");
  }
}

/**
 * Update a command (`PUT /commands/{id}`): the body's `id` must match and `team_id` cannot change;
 * token, creator and creation time are kept. Others' commands need admin.
 */
export function updateCommand(
  app: App,
  actor: User,
  commandId: string,
  input: Record<string, unknown>,
): Command {
  requireEnabled(app);
  const cmd = requireCommand(app, commandId);
  if (input.id !== commandId) throw invalidParam("command_id");
  requireOwnOrOthers(app, actor, cmd);
  if (input.team_id !== cmd.team_id) {
    throw new AppError("api.command.team_mismatch.app_error", "Unable to update commands across teams.", 400);
  }
  Object.assign(cmd, validateFields(input), { update_at: app.store.clock.now() });
  return { ...cmd };
}

/** Delete a command (`DELETE /commands/{id}`). */
export function deleteCommand(app: App, actor: User, commandId: string): void {
  requireEnabled(app);
  const cmd = requireCommand(app, commandId);
  requireOwnOrOthers(app, actor, cmd);
  cmd.delete_at = app.store.clock.now();
}

/** Give a command a new token (`PUT /commands/{id}/regen_token`). */
export function regenCommandToken(app: App, actor: User, commandId: string): string {
  const cmd = requireCommand(app, commandId);
  requireOwnOrOthers(app, actor, cmd);
  cmd.token = newId();
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
