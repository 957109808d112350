/**
 * User routes: profiles, creation, activation, personal access tokens, teams of a user, typing.
 *
 * @module
 */

import {
  AppError,
  invalidBodyParam,
  invalidParam,
  invalidUrlParam,
  notFound,
  permissionError,
} from "./app_error.ts";
import { newEvent } from "./events.ts";
import { json, readJson, readJsonObject, requireUser, statusOk } from "./http.ts";
import { channelParam, idParam, teamParam, userParam } from "./lookup.ts";
import { requireChannelPermission, requireViewTeam } from "./permissions.ts";
import type { Router } from "./router.ts";
import { isSystemAdmin } from "./store.ts";
import {
  checkNames,
  createAccessToken,
  insertUser,
  isValidUsername,
  type NewUser,
  setManualStatus,
  SETTABLE_STATUSES,
  setUserActive,
  statusOf,
  userView,
} from "./users.ts";

async function readIdArray(ctx: Parameters<typeof readJson>[0], name: string): Promise<string[]> {
  const body = await readJson(ctx, name);
  if (!Array.isArray(body) || body.some((v) => typeof v !== "string")) throw invalidBodyParam(name);
  if (body.length === 0) throw invalidParam(name);
  return body;
}

/** Register the user routes. */
export function registerUserRoutes(router: Router): void {
  router.add("GET", "/users/:user_id", (ctx) => {
    const viewer = requireUser(ctx);
    return json(200, userView(userParam(ctx), viewer));
  });

  router.add("GET", "/users/username/:username", (ctx) => {
    const viewer = requireUser(ctx);
    const name = ctx.params.username;
    if (!isValidUsername(name)) throw invalidUrlParam("username");
    const user = ctx.app.store.userByUsername(name);
    if (!user) throw notFound("app.user.get_by_username.app_error", "user");
    return json(200, userView(user, viewer));
  });

  router.add("POST", "/users/ids", async (ctx) => {
    const viewer = requireUser(ctx);
    const ids = await readIdArray(ctx, "user_ids");
    const users = ids.map((id) => ctx.app.store.users.get(id)).filter((u) => u !== undefined);
    return json(200, users.map((u) => userView(u, viewer)));
  });

  router.add("POST", "/users/usernames", async (ctx) => {
    const viewer = requireUser(ctx);
    const names = await readIdArray(ctx, "usernames");
    const users = names.map((n) => ctx.app.store.userByUsername(n.toLowerCase())).filter((u) =>
      u !== undefined
    );
    return json(200, users.map((u) => userView(u, viewer)));
  });

  // api4/user.go createUser → app/user.go CreateUserAsAdmin (an admin) or CreateUserFromSignup (anyone else,
  // refused: open server signup is off) → createUserOrGuest: roles forced to system_user, props kept as
  // given, User.IsValid, unique username and email; then `new_user` to everyone.
  router.add("POST", "/users", async (ctx) => {
    const actor = requireUser(ctx);
    const body = await readJsonObject(ctx, "user");
    if (!isSystemAdmin(actor)) {
      throw new AppError(
        "api.user.create_user.no_open_server",
        "This server does not allow open signups.",
        403,
      );
    }
    const props = body.props === undefined || body.props === null ? {} : body.props;
    if (
      typeof props !== "object" || Array.isArray(props) ||
      Object.values(props).some((v) => typeof v !== "string")
    ) {
      throw invalidBodyParam("user"); // StringMap: the decode fails
    }
    const input: NewUser = {
      username: String(body.username ?? ""),
      email: typeof body.email === "string" ? body.email.trim() : undefined,
      password: typeof body.password === "string" ? body.password : undefined,
      first_name: typeof body.first_name === "string" ? body.first_name : undefined,
      last_name: typeof body.last_name === "string" ? body.last_name : undefined,
      nickname: typeof body.nickname === "string" ? body.nickname : undefined,
      props: props as Record<string, string>,
    };
    const user = insertUser(ctx.app.store, input);
    ctx.app.publish(newEvent("new_user", { user_id: user.id }));
    return json(201, userView(user, actor));
  });

  // api4/user.go updateUserActive: `active` must be a boolean; anyone but oneself needs
  // sysconsole_write_user_management_users (admins: 403 `api.user.update_active.permissions.app_error` for
  // others); deactivating oneself needs EnableUserDeactivation (default false: 401), admins included; then the
  // user (404). Publishes `user_updated` and `user_activation_status_change`.
  router.add("PUT", "/users/:user_id/active", async (ctx) => {
    const actor = requireUser(ctx);
    const userId = idParam(ctx, "user_id");
    const body = await readJsonObject(ctx, "active");
    if (typeof body.active !== "boolean") throw invalidParam("active");
    const selfDeactivate = !body.active && userId === actor.id;
    if (!selfDeactivate && !isSystemAdmin(actor)) {
      throw new AppError(
        "api.user.update_active.permissions.app_error",
        "You do not have the appropriate permissions.",
        403,
      );
    }
    if (selfDeactivate) {
      throw new AppError(
        "api.user.update_active.not_enable.app_error",
        "You cannot deactivate yourself because this feature is not enabled.",
        401,
      );
    }
    const target = userParam(ctx);
    setUserActive(ctx.app, target, body.active);
    ctx.app.publish(newEvent("user_activation_status_change", {}));
    return statusOk();
  });

  // app/user.go: PatchUser → UpdateUser → sendUpdatedUserEvent publishes `user_updated` (delete_at stays 0).
  router.add("PUT", "/users/:user_id/patch", async (ctx) => {
    const actor = requireUser(ctx);
    const target = userParam(ctx);
    const body = await readJsonObject(ctx, "user");
    if (actor.id !== target.id && !isSystemAdmin(actor)) throw permissionError("edit_other_users");
    checkNames({
      nickname: typeof body.nickname === "string" ? body.nickname : target.nickname,
      first_name: typeof body.first_name === "string" ? body.first_name : target.first_name,
      last_name: typeof body.last_name === "string" ? body.last_name : target.last_name,
    });
    for (const field of ["nickname", "first_name", "last_name", "position"] as const) {
      if (typeof body[field] === "string") target[field] = body[field];
    }
    target.update_at = ctx.app.store.clock.now();
    ctx.app.publish(newEvent("user_updated", { user: userView(target) }));
    return json(200, userView(target, actor));
  });

  // api4/user.go createUserAccessToken, in its order: the body, a description, the permission
  // create_user_access_token (only system_admin has it by default), the right to act for the user
  // (edit_other_users), then app CreateUserAccessToken: the user (404), EnableUserAccessTokens unless the user
  // is a bot (501), and UserAccessToken.IsValid (description at most 255).
  router.add("POST", "/users/:user_id/tokens", async (ctx) => {
    const actor = requireUser(ctx);
    const userId = idParam(ctx, "user_id");
    const body = await readJsonObject(ctx, "user_access_token");
    const description = typeof body.description === "string" ? body.description : "";
    if (description === "") throw invalidParam("description");
    if (!isSystemAdmin(actor)) throw permissionError("create_user_access_token");
    const target = ctx.app.store.users.get(userId);
    if (!target) throw notFound("app.user.missing_account.const", "account");
    if (!ctx.app.config.enableUserAccessTokens && !target.is_bot) {
      throw new AppError(
        "app.user_access_token.disabled",
        "Personal access tokens are disabled on this server. Please contact your system administrator for details.",
        501,
      );
    }
    if ([...description].length > 255) {
      throw new AppError(
        "model.user_access_token.is_valid.description.app_error",
        "Invalid description, must be 255 or less characters.",
        400,
      );
    }
    return json(200, createAccessToken(ctx.app.store, target.id, description));
  });

  // api4/status.go getUserStatus: no permission check and no user look-up: an id without a status row (an unknown
  // user too) is offline (app/platform/status.go GetUserStatusesByIds).
  router.add("GET", "/users/:user_id/status", (ctx) => {
    requireUser(ctx);
    return json(200, statusOf(ctx.app.store, idParam(ctx, "user_id")));
  });

  // api4/status.go getUserStatusesByIds: any session; every id must be 26 characters; a user without a status
  // row (never seen, or unknown) is listed as offline (app/platform/status.go GetUserStatusesByIds).
  router.add("POST", "/users/status/ids", async (ctx) => {
    requireUser(ctx);
    let body: unknown;
    try {
      body = await readJson(ctx, "user_ids");
    } catch (err) {
      // model.ArrayFromJSON yields an empty list for a body it cannot decode.
      if (err instanceof AppError && err.statusCode === 400) throw invalidParam("user_ids");
      throw err;
    }
    const ids = Array.isArray(body) ? body.filter((v) => typeof v === "string") : [];
    if (ids.length === 0 || ids.some((id) => id.length !== 26)) throw invalidParam("user_ids");
    return json(200, ids.map((id) => statusOf(ctx.app.store, id)));
  });

  // api4/status.go updateUserStatus: the body's user_id must be the URL's, then self or edit_other_users
  // (SessionHasPermissionToUser), then one of online/offline/away/dnd; answers with the new status.
  router.add("PUT", "/users/:user_id/status", async (ctx) => {
    const actor = requireUser(ctx);
    const target = userParam(ctx);
    const body = await readJsonObject(ctx, "status");
    if (body.user_id !== target.id) throw invalidParam("user_id");
    if (actor.id !== target.id && !isSystemAdmin(actor)) throw permissionError("edit_other_users");
    const status = body.status;
    if (!(SETTABLE_STATUSES as readonly unknown[]).includes(status)) throw invalidParam("status");
    return json(200, setManualStatus(ctx.app, target.id, status as (typeof SETTABLE_STATUSES)[number]));
  });

  router.add("GET", "/users/:user_id/teams", (ctx) => {
    const actor = requireUser(ctx);
    const target = userParam(ctx);
    if (actor.id !== target.id && !isSystemAdmin(actor)) throw permissionError("manage_system");
    const teams = [...ctx.app.store.teams.values()].filter((t) =>
      ctx.app.store.isTeamMember(t.id, target.id)
    );
    return json(200, teams);
  });

  router.add("GET", "/users/:user_id/teams/:team_id/channels", (ctx) => {
    const actor = requireUser(ctx);
    const target = userParam(ctx);
    const team = teamParam(ctx);
    requireViewTeam(ctx.app.store, actor, team.id);
    if (actor.id !== target.id && !isSystemAdmin(actor)) throw permissionError("manage_system");
    const channels = [...ctx.app.store.channels.values()].filter(
      (c) => c.team_id === team.id && ctx.app.store.isChannelMember(c.id, target.id),
    );
    return json(200, channels);
  });

  router.add("GET", "/users/:user_id/teams/:team_id/channels/members", (ctx) => {
    const actor = requireUser(ctx);
    const target = userParam(ctx);
    const team = teamParam(ctx);
    requireViewTeam(ctx.app.store, actor, team.id);
    if (actor.id !== target.id && !isSystemAdmin(actor)) throw permissionError("manage_system");
    const members = [...ctx.app.store.channels.values()]
      .filter((c) => c.team_id === team.id)
      .map((c) => ctx.app.store.channelMembers.get(c.id)?.get(target.id))
      .filter((m) => m !== undefined);
    return json(200, members);
  });

  router.add("POST", "/users/:user_id/typing", async (ctx) => {
    const actor = requireUser(ctx);
    const target = userParam(ctx);
    // api4/user.go publishUserTyping: the body is decoded first, then self or manage_system, then the typer's
    // own create_post in the channel.
    const body = await readJsonObject(ctx, "typing_request");
    if (actor.id !== target.id && !isSystemAdmin(actor)) throw permissionError("manage_system");
    ctx.params.channel_id = String(body.channel_id ?? "");
    const channel = channelParam(ctx);
    requireChannelPermission(ctx.app.store, target, channel, "create_post");
    const parentId = typeof body.parent_id === "string" ? body.parent_id : "";
    ctx.app.publish(
      newEvent("typing", { parent_id: parentId, user_id: target.id }, {
        channelId: channel.id,
        omitUsers: [target.id],
      }),
    );
    return statusOk();
  });
}
