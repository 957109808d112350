/**
 * Teams and channels: creation, membership (with `user_added` / `user_removed` and the join/leave system
 * messages) and channel patches (`channel_updated`).
 *
 * @module
 */

import { AppError, notFound, permissionError } from "./app_error.ts";
import type { App } from "./app.ts";
import { newEvent } from "./events.ts";
import { newId } from "./ids.ts";
import type { Channel, ChannelMember, ChannelType, Team, TeamMember, User } from "./model.ts";
import { hasChannelPermission } from "./permissions.ts";
import { createSystemPost } from "./posts.ts";
import { isSystemAdmin, type Store } from "./store.ts";

const CHANNEL_NAME_PATTERN = /^[a-z0-9]+([a-z\-_0-9]+|(__)?)[a-z0-9]+$/;
/** The channel every team member belongs to and nobody can leave. */
export const DEFAULT_CHANNEL = "town-square";

/** Input for a new channel. */
export interface NewChannel {
  team_id: string;
  name: string;
  display_name?: string;
  type?: ChannelType;
  header?: string;
  purpose?: string;
}

/** Create a team (setup only; the bridge never creates teams). */
export function insertTeam(store: Store, name: string, displayName: string): Team {
  const now = store.clock.now();
  const team: Team = {
    id: newId(),
    create_at: now,
    update_at: now,
    delete_at: 0,
    display_name: displayName,
    name,
    description: "",
    email: "",
    type: "O",
    company_name: "",
    allowed_domains: "",
    invite_id: newId(),
    allow_open_invite: false,
    last_team_icon_update: 0,
    scheme_id: "",
    group_constrained: false,
    policy_id: null,
  };
  store.teams.set(team.id, team);
  store.teamMembers.set(team.id, new Map());
  return team;
}

/** Add a user to a team (idempotent); returns the membership. */
export function insertTeamMember(store: Store, teamId: string, userId: string): TeamMember {
  const members = store.teamMembers.get(teamId)!;
  const existing = members.get(userId);
  if (existing && existing.delete_at === 0) return existing;
  const member: TeamMember = {
    team_id: teamId,
    user_id: userId,
    roles: "team_user",
    delete_at: 0,
    scheme_guest: false,
    scheme_user: true,
    scheme_admin: false,
    explicit_roles: "",
  };
  members.set(userId, member);
  return member;
}

/**
 * Validate and store a channel like `Channel.IsValid` + the store's unique-name check; the creator, if
 * given, becomes its first member. Throws {@link AppError} (400) on an invalid or taken name.
 */
export function insertChannel(store: Store, input: NewChannel, creatorId: string): Channel {
  const name = String(input.name ?? "");
  if (name.length > 64 || !CHANNEL_NAME_PATTERN.test(name)) {
    throw new AppError(
      "model.channel.is_valid.2_or_more.app_error",
      "Name must be 2 or more lowercase alphanumeric characters.",
      400,
    );
  }
  const displayName = input.display_name ?? name;
  if (displayName === "" || [...displayName].length > 64) {
    throw new AppError("model.channel.is_valid.display_name.app_error", "Invalid display name.", 400);
  }
  const type = input.type ?? "O";
  if (type !== "O" && type !== "P") {
    throw new AppError("model.channel.is_valid.type.app_error", "Invalid type.", 400);
  }
  if (!store.teams.has(input.team_id)) throw notFound("app.team.get.find.app_error", "team");
  if (store.channelByName(input.team_id, name)) {
    throw new AppError(
      "store.sql_channel.save_channel.exists.app_error",
      "A channel with that name already exists on the same team.",
      400,
    );
  }
  const now = store.clock.now();
  const channel: Channel = {
    id: newId(),
    create_at: now,
    update_at: now,
    delete_at: 0,
    team_id: input.team_id,
    type,
    display_name: displayName,
    name,
    header: input.header ?? "",
    purpose: input.purpose ?? "",
    last_post_at: now,
    last_root_post_at: now,
    total_msg_count: 0,
    total_msg_count_root: 0,
    extra_update_at: 0,
    creator_id: creatorId,
    scheme_id: null,
    props: null,
    group_constrained: null,
    shared: false,
    policy_id: null,
  };
  store.channels.set(channel.id, channel);
  store.channelMembers.set(channel.id, new Map());
  if (creatorId) insertChannelMember(store, channel.id, creatorId, true);
  return channel;
}

/** Store a membership without events (setup, and the first step of {@link addChannelMember}). */
export function insertChannelMember(
  store: Store,
  channelId: string,
  userId: string,
  admin = false,
): ChannelMember {
  const now = store.clock.now();
  const member: ChannelMember = {
    channel_id: channelId,
    user_id: userId,
    roles: admin ? "channel_user channel_admin" : "channel_user",
    last_viewed_at: 0,
    msg_count: 0,
    mention_count: 0,
    mention_count_root: 0,
    urgent_mention_count: 0,
    msg_count_root: 0,
    notify_props: {
      desktop: "default",
      email: "default",
      ignore_channel_mentions: "default",
      mark_unread: "all",
      push: "default",
    },
    last_update_at: now,
    scheme_guest: false,
    scheme_user: true,
    scheme_admin: admin,
    explicit_roles: "",
  };
  store.channelMembers.get(channelId)!.set(userId, member);
  return member;
}

/** Whether `actor` may manage the channel's members or properties: members and admins. */
function canManageChannel(app: App, actor: User, channel: Channel): boolean {
  return hasChannelPermission(app.store, actor, channel);
}

/**
 * Add `target` to a channel as `actor` (`POST /channels/{id}/members`). Joining a public channel oneself
 * needs only team membership; adding someone else, or any add to a private channel, needs the actor to be
 * a member (or admin). The target must be an active team member. Already a member: returned unchanged,
 * no events. Otherwise publishes `user_added`, then the `system_join_channel` / `system_add_to_channel` post.
 */
export function addChannelMember(app: App, actor: User, channel: Channel, target: User): ChannelMember {
  const { store } = app;
  // api4/channel.go addChannelMember: a direct or group channel's members are fixed at its creation.
  if (channel.type === "D" || channel.type === "G") {
    throw new AppError(
      "api.channel.add_user_to_channel.type.app_error",
      "Can not add user to this channel type.",
      400,
    );
  }
  const selfJoin = actor.id === target.id;
  if (channel.type === "O" && selfJoin) {
    if (!isSystemAdmin(actor) && !store.isTeamMember(channel.team_id, actor.id)) {
      throw permissionError("join_public_channels");
    }
  } else if (!canManageChannel(app, actor, channel)) {
    throw permissionError(
      channel.type === "O" ? "manage_public_channel_members" : "manage_private_channel_members",
    );
  }
  if (target.delete_at !== 0) {
    throw new AppError(
      "api.channel.add_user_to_channel.deactivated.app_error",
      "The user is deactivated.",
      400,
    );
  }
  const existing = store.channelMembers.get(channel.id)?.get(target.id);
  if (existing) return existing;
  if (!store.isTeamMember(channel.team_id, target.id)) {
    throw notFound("app.team.get_member.missing.app_error", "team member");
  }
  const member = insertChannelMember(store, channel.id, target.id);
  app.publish(
    newEvent("user_added", { team_id: channel.team_id, user_id: target.id }, { channelId: channel.id }),
  );
  if (selfJoin) {
    createSystemPost(app, {
      channel,
      userId: target.id,
      type: "system_join_channel",
      message: `@${target.username} joined the channel.`,
      props: { username: target.username },
    });
  } else {
    createSystemPost(app, {
      channel,
      userId: actor.id,
      type: "system_add_to_channel",
      message: `@${target.username} added to the channel by @${actor.username}.`,
      props: {
        addedUserId: target.id,
        addedUsername: target.username,
        userId: actor.id,
        username: actor.username,
      },
    });
  }
  return member;
}

/**
 * Remove `target` from a channel as `actor` (`DELETE /channels/{id}/members/{user_id}`). Leaving is
 * always allowed except for town-square; removing others needs membership or admin. Publishes
 * `user_removed` to the channel and to the removed user, then the leave/remove system post.
 */
export function removeChannelMember(app: App, actor: User, channel: Channel, target: User): void {
  const { store } = app;
  const selfLeave = actor.id === target.id;
  if (!selfLeave && !canManageChannel(app, actor, channel)) {
    throw permissionError(
      channel.type === "O" ? "manage_public_channel_members" : "manage_private_channel_members",
    );
  }
  if (channel.name === DEFAULT_CHANNEL) {
    throw new AppError(
      "api.channel.remove.default.app_error",
      `Unable to remove user from the default channel ${DEFAULT_CHANNEL}.`,
      400,
    );
  }
  if (!store.channelMembers.get(channel.id)?.delete(target.id)) {
    throw notFound("app.channel.get_member.missing.app_error", "channel member");
  }
  app.publish(
    newEvent("user_removed", { remover_id: actor.id, user_id: target.id }, { channelId: channel.id }),
  );
  app.publish(
    newEvent("user_removed", { channel_id: channel.id, remover_id: actor.id }, { userId: target.id }),
  );
  createSystemPost(
    app,
    selfLeave
      ? {
        channel,
        userId: target.id,
        type: "system_leave_channel",
        message: `@${target.username} left the channel.`,
        props: { username: target.username },
      }
      : {
        channel,
        userId: actor.id,
        type: "system_remove_from_channel",
        message: `@${target.username} was removed from the channel.`,
        props: { removedUserId: target.id, removedUsername: target.username },
      },
  );
}

/** The body of `PUT /channels/{id}/patch`. */
export interface ChannelPatch {
  display_name?: string;
  header?: string;
  purpose?: string;
}

/**
 * Patch a channel's display name, header or purpose (members and admins). Publishes `channel_updated`
 * and one system post per changed field, as the real server does.
 */
export function patchChannel(app: App, actor: User, channel: Channel, patch: ChannelPatch): Channel {
  if (!canManageChannel(app, actor, channel)) {
    throw permissionError(
      channel.type === "O" ? "manage_public_channel_properties" : "manage_private_channel_properties",
    );
  }
  const changes: {
    field: "display_name" | "header" | "purpose";
    type: string;
    label: string;
    key: string;
  }[] = [
    {
      field: "display_name",
      type: "system_displayname_change",
      label: "channel display name",
      key: "displayname",
    },
    { field: "header", type: "system_header_change", label: "channel header", key: "header" },
    { field: "purpose", type: "system_purpose_change", label: "channel purpose", key: "purpose" },
  ];
  const changed: { change: typeof changes[number]; old: string; value: string }[] = [];
  for (const change of changes) {
    const value = patch[change.field];
    if (typeof value !== "string" || value === channel[change.field]) continue;
    if (change.field === "display_name" && (value === "" || [...value].length > 64)) {
      throw new AppError("model.channel.is_valid.display_name.app_error", "Invalid display name.", 400);
    }
    changed.push({ change, old: channel[change.field], value });
    channel[change.field] = value;
  }
  channel.update_at = app.store.clock.now();
  app.publish(newEvent("channel_updated", { channel: JSON.stringify(channel) }, { channelId: channel.id }));
  for (const { change, old, value } of changed) {
    const message = old === ""
      ? `@${actor.username} updated the ${change.label} to: ${value}`
      : `@${actor.username} updated the ${change.label} from: ${old} to: ${value}`;
    createSystemPost(app, {
      channel,
      userId: actor.id,
      type: change.type,
      message,
      props: { username: actor.username, [`old_${change.key}`]: old, [`new_${change.key}`]: value },
    });
  }
  return { ...channel };
}

/** The name of the direct channel between two users: their ids sorted, joined by `__` (model `GetDMNameFromIds`). */
export function directChannelName(userId: string, otherUserId: string): string {
  return [userId, otherUserId].sort().join("__");
}

/**
 * The direct channel between `userId` and `otherUserId`, created when there is none (app/channel.go
 * `GetOrCreateDirectChannel`, `createDirectChannel`, sqlstore `CreateDirectChannel`): type `D`, no team, no display
 * name, named by {@link directChannelName}, both users members (one membership for a channel with oneself). An
 * unknown user is 400 `api.channel.create_direct_channel.invalid_user.app_error`; a deactivated one is accepted
 * (the store does not look). Only a new channel publishes `direct_added` (`handleCreationEvent`) to its members.
 */
export function getOrCreateDirectChannel(app: App, userId: string, otherUserId: string): Channel {
  const { store } = app;
  const name = directChannelName(userId, otherUserId);
  for (const channel of store.channels.values()) {
    if (channel.type === "D" && channel.name === name) return channel;
  }
  if (!store.users.has(userId) || !store.users.has(otherUserId)) {
    throw new AppError(
      "api.channel.create_direct_channel.invalid_user.app_error",
      "Invalid user ID for direct channel creation.",
      400,
      `No users found for ids: ${userId}. ${otherUserId}`,
    );
  }
  const now = store.clock.now();
  const channel: Channel = {
    id: newId(),
    create_at: now,
    update_at: now,
    delete_at: 0,
    team_id: "",
    type: "D",
    display_name: "",
    name,
    header: "",
    purpose: "",
    last_post_at: now,
    last_root_post_at: now,
    total_msg_count: 0,
    total_msg_count_root: 0,
    extra_update_at: 0,
    creator_id: "",
    scheme_id: null,
    props: null,
    group_constrained: null,
    shared: false,
    policy_id: null,
  };
  store.channels.set(channel.id, channel);
  store.channelMembers.set(channel.id, new Map());
  insertChannelMember(store, channel.id, userId);
  if (otherUserId !== userId) insertChannelMember(store, channel.id, otherUserId);
  app.publish(
    newEvent("direct_added", { creator_id: userId, teammate_id: otherUserId }, { channelId: channel.id }),
  );
  return channel;
}
