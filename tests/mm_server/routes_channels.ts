/**
 * Team and channel routes: lookups by id and name, creation, patching and membership.
 *
 * @module
 */

import { AppError, invalidParam, notFound, permissionError } from "./app_error.ts";
import {
  addChannelMember,
  getOrCreateDirectChannel,
  insertChannel,
  insertTeamMember,
  patchChannel,
  removeChannelMember,
} from "./channels.ts";
import { newEvent } from "./events.ts";
import { isValidId } from "./ids.ts";
import {
  intParam,
  json,
  readJson,
  readJsonObject,
  type RequestContext,
  requireUser,
  statusOk,
} from "./http.ts";
import { channelParam, idParam, teamNameParam, teamParam, userParam } from "./lookup.ts";
import type { Channel, Team, User } from "./model.ts";
import {
  canReadChannel,
  hasChannelPermission,
  hasSystemPermission,
  requireReadChannel,
  requireViewTeam,
} from "./permissions.ts";
import type { Router } from "./router.ts";
import { isSystemAdmin } from "./store.ts";

/**
 * A channel looked up by name, as `getChannelByNameForTeamName` answers it: unknown → 404; a private
 * channel the caller cannot read → also 404 (its existence is not revealed); a public one → 403.
 */
function channelByName(ctx: RequestContext, actor: User, team: Team): Channel {
  const channel = ctx.app.store.channelByName(team.id, ctx.params.channel_name);
  if (!channel || (channel.delete_at !== 0 && ctx.url.searchParams.get("include_deleted") !== "true")) {
    throw notFound("app.channel.get_by_name.missing.app_error", "channel");
  }
  if (!canReadChannel(ctx.app.store, actor, channel)) {
    if (channel.type !== "O") throw notFound("app.channel.get_by_name.missing.app_error", "channel");
    throw permissionError("read_public_channel");
  }
  return channel;
}

/** Register the team and channel routes. */
export function registerChannelRoutes(router: Router): void {
  router.add("GET", "/teams/:team_id", (ctx) => {
    const actor = requireUser(ctx);
    const team = teamParam(ctx);
    requireViewTeam(ctx.app.store, actor, team.id);
    return json(200, team);
  });

  router.add("GET", "/teams/name/:team_name", (ctx) => {
    const actor = requireUser(ctx);
    const team = teamNameParam(ctx);
    requireViewTeam(ctx.app.store, actor, team.id);
    return json(200, team);
  });

  router.add("GET", "/teams/:team_id/members/:user_id", (ctx) => {
    const actor = requireUser(ctx);
    const team = teamParam(ctx);
    requireViewTeam(ctx.app.store, actor, team.id);
    const member = ctx.app.store.teamMembers.get(team.id)?.get(idParam(ctx, "user_id"));
    if (!member || member.delete_at !== 0) {
      throw notFound("app.team.get_member.missing.app_error", "team member");
    }
    return json(200, member);
  });

  router.add("POST", "/teams/:team_id/members", async (ctx) => {
    const actor = requireUser(ctx);
    const team = teamParam(ctx);
    const body = await readJsonObject(ctx, "team_member");
    if (body.team_id !== team.id) throw invalidParam("team_id");
    const target = ctx.app.store.users.get(String(body.user_id ?? ""));
    if (!target) throw notFound("app.user.missing_account.const", "account");
    if (!isSystemAdmin(actor) && !ctx.app.store.isTeamMember(team.id, actor.id)) {
      throw permissionError("add_user_to_team");
    }
    const member = insertTeamMember(ctx.app.store, team.id, target.id);
    ctx.app.publish(
      newEvent("added_to_team", { team_id: team.id, user_id: target.id }, { userId: target.id }),
    );
    return json(201, member);
  });

  router.add("GET", "/teams/:team_id/channels", (ctx) => {
    const actor = requireUser(ctx);
    const team = teamParam(ctx);
    requireViewTeam(ctx.app.store, actor, team.id);
    const page = intParam(ctx.url, "page", 0);
    const perPage = intParam(ctx.url, "per_page", 60, 200);
    const open = [...ctx.app.store.channels.values()]
      .filter((c) => c.team_id === team.id && c.type === "O" && c.delete_at === 0)
      .sort((a, b) => a.display_name.localeCompare(b.display_name));
    return json(200, open.slice(page * perPage, page * perPage + perPage));
  });

  router.add("GET", "/teams/:team_id/channels/name/:channel_name", (ctx) => {
    const actor = requireUser(ctx);
    return json(200, channelByName(ctx, actor, teamParam(ctx)));
  });

  router.add("GET", "/teams/name/:team_name/channels/name/:channel_name", (ctx) => {
    const actor = requireUser(ctx);
    return json(200, channelByName(ctx, actor, teamNameParam(ctx)));
  });

  router.add("POST", "/channels", async (ctx) => {
    const actor = requireUser(ctx);
    const body = await readJsonObject(ctx, "channel");
    const teamId = String(body.team_id ?? "");
    const type = body.type === "P" ? "P" : body.type === "O" || body.type === undefined ? "O" : undefined;
    if (!type) throw new AppError("model.channel.is_valid.type.app_error", "Invalid type.", 400);
    if (!isSystemAdmin(actor) && !ctx.app.store.isTeamMember(teamId, actor.id)) {
      throw permissionError(type === "O" ? "create_public_channel" : "create_private_channel");
    }
    const channel = insertChannel(ctx.app.store, {
      team_id: teamId,
      name: String(body.name ?? ""),
      display_name: typeof body.display_name === "string" ? body.display_name : "",
      type,
      header: typeof body.header === "string" ? body.header : "",
      purpose: typeof body.purpose === "string" ? body.purpose : "",
    }, actor.id);
    ctx.app.publish(
      newEvent("channel_created", { channel_id: channel.id, team_id: teamId }, { userId: actor.id }),
    );
    return json(201, channel);
  });

  // api4/channel.go createDirectChannel: a JSON array of two user ids (duplicates dropped; one id is a channel with
  // oneself when it is the caller's), each a valid id; `create_direct_channel` (every `system_user` has it); a pair
  // without the caller needs `manage_system`. 201 whether the channel is new or not.
  router.add("POST", "/channels/direct", async (ctx) => {
    const actor = requireUser(ctx);
    const body = await readJson(ctx, "user_ids");
    if (!Array.isArray(body) || !body.every((id) => typeof id === "string")) {
      throw new AppError("api.payload.parse.error", "Unable to parse the request payload.", 400);
    }
    let userIds = [...new Set(body as string[])];
    if (userIds.length === 1 && userIds[0] === actor.id) userIds = [actor.id, actor.id];
    if (userIds.length !== 2) throw invalidParam("user_ids");
    if (!userIds.every((id) => isValidId(id))) throw invalidParam("user_id");
    if (!hasSystemPermission(ctx.app.store, actor, "create_direct_channel")) {
      throw permissionError("create_direct_channel");
    }
    if (!userIds.includes(actor.id) && !isSystemAdmin(actor)) throw permissionError("manage_system");
    return json(201, getOrCreateDirectChannel(ctx.app, userIds[0], userIds[1]));
  });

  router.add("GET", "/channels/:channel_id", (ctx) => {
    const actor = requireUser(ctx);
    const channel = channelParam(ctx);
    requireReadChannel(ctx.app.store, actor, channel);
    return json(200, channel);
  });

  router.add("PUT", "/channels/:channel_id/patch", async (ctx) => {
    const actor = requireUser(ctx);
    const channel = channelParam(ctx);
    const body = await readJsonObject(ctx, "channel");
    return json(200, patchChannel(ctx.app, actor, channel, body));
  });

  router.add("GET", "/channels/:channel_id/members", (ctx) => {
    const actor = requireUser(ctx);
    const channel = channelParam(ctx);
    if (!hasChannelPermission(ctx.app.store, actor, channel)) throw permissionError("read_channel");
    const page = intParam(ctx.url, "page", 0);
    const perPage = intParam(ctx.url, "per_page", 60, 200);
    const members = [...(ctx.app.store.channelMembers.get(channel.id)?.values() ?? [])];
    return json(200, members.slice(page * perPage, page * perPage + perPage));
  });

  // A non-member asking about a channel gets 403 (read_channel), even for a public channel and even
  // when asking about itself; only a member (or admin) can learn that someone is not a member (404).
  router.add("GET", "/channels/:channel_id/members/:user_id", (ctx) => {
    const actor = requireUser(ctx);
    const channel = channelParam(ctx);
    const userId = idParam(ctx, "user_id");
    if (!hasChannelPermission(ctx.app.store, actor, channel)) throw permissionError("read_channel");
    const member = ctx.app.store.channelMembers.get(channel.id)?.get(userId);
    if (!member) throw notFound("app.channel.get_member.missing.app_error", "channel member");
    return json(200, member);
  });

  router.add("POST", "/channels/:channel_id/members", async (ctx) => {
    const actor = requireUser(ctx);
    const channel = channelParam(ctx);
    const body = await readJsonObject(ctx, "channel_member");
    const userId = typeof body.user_id === "string" ? body.user_id : "";
    ctx.params.user_id = userId;
    if (!userId) throw invalidParam("user_id");
    const target = userParam(ctx);
    return json(201, addChannelMember(ctx.app, actor, channel, target));
  });

  router.add("DELETE", "/channels/:channel_id/members/:user_id", (ctx) => {
    const actor = requireUser(ctx);
    const channel = channelParam(ctx);
    removeChannelMember(ctx.app, actor, channel, userParam(ctx));
    return statusOk();
  });
}
