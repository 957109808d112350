/**
 * Path-parameter lookups shared by the route modules: validate the id (400), find the object (404).
 *
 * @module
 */

import { invalidUrlParam, notFound } from "./app_error.ts";
import { type RequestContext, requireUser } from "./http.ts";
import { isValidId } from "./ids.ts";
import type { Channel, Team, User } from "./model.ts";

/** The id in a path parameter; `me` means the caller for `user_id`. */
export function idParam(ctx: RequestContext, name: string): string {
  const value = ctx.params[name];
  if (name === "user_id" && value === "me") return requireUser(ctx).id;
  if (!isValidId(value)) throw invalidUrlParam(name);
  return value;
}

/** The user named by `:user_id` (404 `app.user.missing_account.const`). */
export function userParam(ctx: RequestContext): User {
  const user = ctx.app.store.users.get(idParam(ctx, "user_id"));
  if (!user) throw notFound("app.user.missing_account.const", "account");
  return user;
}

/** The channel named by `:channel_id` (404 `app.channel.get.existing.app_error`). */
export function channelParam(ctx: RequestContext): Channel {
  const channel = ctx.app.store.channels.get(idParam(ctx, "channel_id"));
  if (!channel) throw notFound("app.channel.get.existing.app_error", "channel");
  return channel;
}

/** The team named by `:team_id` (404 `app.team.get.find.app_error`). */
export function teamParam(ctx: RequestContext): Team {
  const team = ctx.app.store.teams.get(idParam(ctx, "team_id"));
  if (!team) throw notFound("app.team.get.find.app_error", "team");
  return team;
}

/** The team named by `:team_name` (404 `app.team.get_by_name.missing.app_error`). */
export function teamNameParam(ctx: RequestContext): Team {
  const team = ctx.app.store.teamByName(ctx.params.team_name);
  if (!team) throw notFound("app.team.get_by_name.missing.app_error", "team");
  return team;
}
