/**
 * The permission checks the real server makes on the paths a bridge uses, reduced to the default roles:
 * `system_admin` may do anything; `team_user` may read and join the team's public channels;
 * `channel_user` (a channel member) may read, post, react and upload there.
 *
 * @module
 */

import { permissionError } from "./app_error.ts";
import type { Channel, User } from "./model.ts";
import { isSystemAdmin, type Store } from "./store.ts";

/**
 * `SessionHasPermissionToChannel` for channel-scoped permissions (`read_channel`, `create_post`,
 * `add_reaction`, `upload_file`…): members and admins only. Team membership does not grant these, so a
 * non-member gets 403 even on a public channel.
 */
export function hasChannelPermission(store: Store, user: User, channel: Channel): boolean {
  return isSystemAdmin(user) || store.isChannelMember(channel.id, user.id);
}

/**
 * Reading a channel object or its posts (`read_public_channel` for open channels via team membership,
 * `read_channel` otherwise).
 */
export function canReadChannel(store: Store, user: User, channel: Channel): boolean {
  if (hasChannelPermission(store, user, channel)) return true;
  return channel.type === "O" && store.isTeamMember(channel.team_id, user.id);
}

/** Throw the real server's 403 unless the user has the channel-scoped permission. */
export function requireChannelPermission(
  store: Store,
  user: User,
  channel: Channel,
  permission: string,
): void {
  if (!hasChannelPermission(store, user, channel)) throw permissionError(permission);
}

/** Throw 403 unless the user may read the channel (see {@link canReadChannel}). */
export function requireReadChannel(store: Store, user: User, channel: Channel): void {
  if (!canReadChannel(store, user, channel)) {
    throw permissionError(channel.type === "O" ? "read_public_channel" : "read_channel");
  }
}

/** Throw 403 unless the user may see the team (`view_team`). */
export function requireViewTeam(store: Store, user: User, teamId: string): void {
  if (!isSystemAdmin(user) && !store.isTeamMember(teamId, user.id)) throw permissionError("view_team");
}

/** Throw 403 unless the user is a system admin (`manage_system`). */
export function requireSystemAdmin(user: User, permission = "manage_system"): void {
  if (!isSystemAdmin(user)) throw permissionError(permission);
}

/**
 * `manage_slash_commands`: admins, and bots — the stand-in grants it to bots the way an admin would
 * grant it to the bridge's bot account; plain users lack it (the default since integrations are admin-only).
 */
export function canManageSlashCommands(user: User): boolean {
  return isSystemAdmin(user) || user.is_bot;
}
