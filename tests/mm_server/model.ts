/**
 * The JSON shapes of Mattermost's API v4 objects (`server/public/model`), as the stand-in stores and
 * returns them. Field names and defaults follow the Go structs' JSON tags.
 *
 * @module
 */

/** A user (`model.User`). `notify_props` and the other private fields are only shown to the user themself. */
export interface User {
  id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  username: string;
  auth_data: string;
  auth_service: string;
  email: string;
  email_verified: boolean;
  nickname: string;
  first_name: string;
  last_name: string;
  position: string;
  roles: string;
  locale: string;
  timezone: { automaticTimezone: string; manualTimezone: string; useAutomaticTimezone: string };
  props: Record<string, string>;
  notify_props: Record<string, string>;
  last_password_update: number;
  last_picture_update: number;
  is_bot: boolean;
  bot_description?: string;
  mfa_active: boolean;
  disable_welcome_email: boolean;
}

/** A team (`model.Team`). */
export interface Team {
  id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  display_name: string;
  name: string;
  description: string;
  email: string;
  type: "O" | "I";
  company_name: string;
  allowed_domains: string;
  invite_id: string;
  allow_open_invite: boolean;
  last_team_icon_update: number;
  scheme_id: string;
  group_constrained: boolean;
  policy_id: string | null;
}

/** Channel types: open, private, direct, group. */
export type ChannelType = "O" | "P" | "D" | "G";

/** A channel (`model.Channel`). */
export interface Channel {
  id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  team_id: string;
  type: ChannelType;
  display_name: string;
  name: string;
  header: string;
  purpose: string;
  last_post_at: number;
  last_root_post_at: number;
  total_msg_count: number;
  total_msg_count_root: number;
  extra_update_at: number;
  creator_id: string;
  scheme_id: string | null;
  props: Record<string, unknown> | null;
  group_constrained: boolean | null;
  shared: boolean | null;
  policy_id: string | null;
}

/** A channel membership (`model.ChannelMember`). */
export interface ChannelMember {
  channel_id: string;
  user_id: string;
  roles: string;
  last_viewed_at: number;
  msg_count: number;
  mention_count: number;
  mention_count_root: number;
  urgent_mention_count: number;
  msg_count_root: number;
  notify_props: Record<string, string>;
  last_update_at: number;
  scheme_guest: boolean;
  scheme_user: boolean;
  scheme_admin: boolean;
  explicit_roles: string;
}

/** A team membership (`model.TeamMember`). */
export interface TeamMember {
  team_id: string;
  user_id: string;
  roles: string;
  delete_at: number;
  scheme_guest: boolean;
  scheme_user: boolean;
  scheme_admin: boolean;
  explicit_roles: string;
}

/** A post (`model.Post`). `metadata` is computed when the post is sent out. */
export interface Post {
  id: string;
  create_at: number;
  update_at: number;
  edit_at: number;
  delete_at: number;
  is_pinned: boolean;
  user_id: string;
  channel_id: string;
  root_id: string;
  original_id: string;
  message: string;
  type: string;
  props: Record<string, unknown>;
  hashtags: string;
  file_ids?: string[];
  pending_post_id: string;
  has_reactions?: boolean;
  reply_count: number;
  last_reply_at: number;
  participants: null;
  metadata?: PostMetadata;
}

/** `model.PostMetadata`, the parts the stand-in fills. */
export interface PostMetadata {
  embeds?: unknown[];
  emojis?: unknown[];
  files?: FileInfo[];
  reactions?: Reaction[];
}

/** A list of posts (`model.PostList`): `order` holds ids newest first. */
export interface PostList {
  order: string[];
  posts: Record<string, Post>;
  next_post_id: string;
  prev_post_id: string;
  has_next: boolean;
  first_inaccessible_post_time: number;
}

/** A reaction (`model.Reaction`). */
export interface Reaction {
  user_id: string;
  post_id: string;
  emoji_name: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  remote_id: string;
  channel_id: string;
}

/** An uploaded file's metadata (`model.FileInfo`). */
export interface FileInfo {
  id: string;
  user_id: string;
  post_id: string;
  channel_id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  name: string;
  extension: string;
  size: number;
  mime_type: string;
  width: number;
  height: number;
  has_preview_image: boolean;
  mini_preview: null;
  archived: boolean;
}

/** A custom slash command (`model.Command`). */
export interface Command {
  id: string;
  token: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  creator_id: string;
  team_id: string;
  trigger: string;
  method: "P" | "G";
  username: string;
  icon_url: string;
  auto_complete: boolean;
  auto_complete_desc: string;
  auto_complete_hint: string;
  display_name: string;
  description: string;
  url: string;
  plugin_id: string;
}

/** A personal access token (`model.UserAccessToken`); `token` is only returned when created. */
export interface UserAccessToken {
  id: string;
  token?: string;
  user_id: string;
  description: string;
  is_active: boolean;
}

/** A user's presence (`model.Status`). */
export interface Status {
  user_id: string;
  status: "online" | "away" | "offline" | "dnd";
  manual: boolean;
  last_activity_at: number;
}
