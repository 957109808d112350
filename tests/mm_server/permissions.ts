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
 * Team-scoped permissions of the default roles (`model/role.go` `MakeDefaultRoles`), as far as the stand-in
 * checks them. `team_user` and `system_user` — what a bot gets — lack `manage_slash_commands`; only
 * `team_admin` (and `system_admin`, which has every permission) has it.
 */
const TEAM_ROLE_PERMISSIONS: Record<string, readonly string[]> = {
  team_user: [
    "list_team_channels",
    "join_public_channels",
    "read_public_channel",
    "view_team",
    "create_public_channel",
    "create_private_channel",
    "invite_user",
    "add_user_to_team",
  ],
  team_admin: [
    "remove_user_from_team",
    "manage_team",
    "import_team",
    "manage_team_roles",
    "manage_channel_roles",
    "manage_others_incoming_webhooks",
    "manage_others_outgoing_webhooks",
    "manage_slash_commands",
    "manage_others_slash_commands",
    "manage_incoming_webhooks",
    "manage_outgoing_webhooks",
    "convert_public_channel_to_private",
    "convert_private_channel_to_public",
    "delete_post",
    "delete_others_posts",
  ],
  system_user: [
    "list_public_teams",
    "join_public_teams",
    "create_direct_channel",
    "create_group_channel",
    "view_members",
    "create_team",
  ],
};

function rolesGrant(roles: string, permission: string, store?: Store): boolean {
  return roles.split(" ").some((role) =>
    TEAM_ROLE_PERMISSIONS[role]?.includes(permission) ||
    (store?.addedRolePermissions.get(role)?.includes(permission) ?? false)
  );
}

/**
 * `SessionHasPermissionTo` for system-scoped permissions (`create_post_ephemeral`…): the user's system roles
 * only. By default only `system_admin` has `create_post_ephemeral`; `system_user` — a bot's role — lacks it
 * (model/role.go `MakeDefaultRoles`), unless an admin added it to the role (`addedRolePermissions`).
 */
export function hasSystemPermission(store: Store, user: User, permission: string): boolean {
  return isSystemAdmin(user) || rolesGrant(user.roles, permission, store);
}

/**
 * `SessionHasPermissionToTeam`: false for an empty team id; true for a system admin; otherwise the roles
 * of the user's live membership in that team, then the user's system roles, must grant it.
 */
export function hasTeamPermission(store: Store, user: User, teamId: string, permission: string): boolean {
  if (teamId === "") return false;
  if (isSystemAdmin(user)) return true;
  const member = store.teamMembers.get(teamId)?.get(user.id);
  if (member && member.delete_at === 0 && rolesGrant(member.roles, permission)) return true;
  return rolesGrant(user.roles, permission);
}
