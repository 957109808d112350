/**
 * Users, their tokens and presence: creation with the real validation rules, the sanitized views other
 * users get, deactivation (`user_updated`) and `status_change`, and which tokens authenticate.
 *
 * @module
 */

import { AppError } from "./app_error.ts";
import type { App } from "./app.ts";
import { newEvent } from "./events.ts";
import { newId } from "./ids.ts";
import type { Status, User, UserAccessToken } from "./model.ts";
import { isSystemAdmin, type Store } from "./store.ts";

// model/user.go: validUsernameChars and restrictedUsernames. The server asks for no letter first (only its
// error message still says so), and `here` is not reserved there.
const USERNAME_PATTERN = /^[a-z0-9.\-_]{1,64}$/;
const RESTRICTED_USERNAMES = new Set(["all", "channel", "matterbot", "system"]);
/** `UserNicknameMaxRunes`, `UserFirstNameMaxRunes`, `UserLastNameMaxRunes`. */
const NAME_MAX_RUNES = 64;
const EMAIL_PATTERN = /^[^@\s]+@[^@\s]+$/;
const MIN_PASSWORD_LENGTH = 8;

/** What a caller may set when creating a user. */
export interface NewUser {
  username: string;
  email?: string;
  password?: string;
  first_name?: string;
  last_name?: string;
  nickname?: string;
  roles?: string;
  is_bot?: boolean;
  bot_description?: string;
  /** Free-form string props, stored as given (`User.Props`). */
  props?: Record<string, string>;
}

/**
 * Whether a (lowercased) username passes `model.IsValidUsername`.
 *
 * @example
 * ```ts
 * isValidUsername("alice.b"); // true
 * isValidUsername("system"); // false: reserved
 * ```
 */
export function isValidUsername(username: string): boolean {
  return USERNAME_PATTERN.test(username) && !RESTRICTED_USERNAMES.has(username);
}

/**
 * Validate and store a user like `App.CreateUser`: the username is lowercased (`NormalizeUsername`), then
 * must match `^[a-z0-9.\-_]{1,64}$` and not be reserved; username and email must be unique. Bots need no
 * email or password. Throws {@link AppError} (400) on invalid input.
 */
export function insertUser(store: Store, input: NewUser): User {
  const username = String(input.username ?? "").toLowerCase();
  if (!isValidUsername(username)) {
    throw new AppError(
      "model.user.is_valid.username.app_error",
      "Username must begin with a letter and contain lowercase letters, numbers and the symbols '.', '-' and '_'.",
      400,
    );
  }
  const isBot = input.is_bot === true;
  const email = (input.email ?? (isBot ? `${username}@localhost` : "")).toLowerCase();
  if (!EMAIL_PATTERN.test(email)) {
    throw new AppError("model.user.is_valid.email.app_error", "Invalid email.", 400);
  }
  if (!isBot && (input.password ?? "").length < MIN_PASSWORD_LENGTH) {
    throw new AppError(
      "model.user.is_valid.pwd.app_error",
      `Your password must contain at least ${MIN_PASSWORD_LENGTH} characters.`,
      400,
    );
  }
  checkNames(input);
  for (const other of store.users.values()) {
    if (other.username === username) {
      throw new AppError(
        "app.user.save.username_exists.app_error",
        "An account with that username already exists.",
        400,
      );
    }
    if (other.email === email) {
      throw new AppError(
        "app.user.save.email_exists.app_error",
        "An account with that email already exists.",
        400,
      );
    }
  }
  const now = store.clock.now();
  const user: User = {
    id: newId(),
    create_at: now,
    update_at: now,
    delete_at: 0,
    username,
    auth_data: "",
    auth_service: "",
    email,
    email_verified: true,
    nickname: input.nickname ?? "",
    first_name: input.first_name ?? "",
    last_name: input.last_name ?? "",
    position: "",
    roles: input.roles ?? "system_user",
    locale: "en",
    timezone: { automaticTimezone: "", manualTimezone: "", useAutomaticTimezone: "true" },
    props: { ...input.props },
    notify_props: {
      channel: "true",
      comments: "never",
      desktop: "mention",
      desktop_sound: "true",
      email: "true",
      first_name: "false",
      mention_keys: "",
      push: "mention",
      push_status: "away",
    },
    last_password_update: now,
    last_picture_update: 0,
    is_bot: isBot,
    mfa_active: false,
    disable_welcome_email: false,
  };
  if (isBot) user.bot_description = input.bot_description ?? "";
  store.users.set(user.id, user);
  return user;
}

/**
 * `User.IsValid`'s length checks of the names a person sets: nickname, first and last name at most 64 runes
 * each, else 400 `model.user.is_valid.<field>.app_error`.
 */
export function checkNames(user: { nickname?: string; first_name?: string; last_name?: string }): void {
  for (const field of ["nickname", "first_name", "last_name"] as const) {
    if ([...(user[field] ?? "")].length > NAME_MAX_RUNES) {
      throw new AppError(`model.user.is_valid.${field}.app_error`, `Invalid ${field}.`, 400);
    }
  }
}

/**
 * The user a token authenticates, as the Go server decides: a session's user, or a personal access token's
 * while it is active, its user is active, and `EnableUserAccessTokens` is on unless the user is a bot
 * (app/session.go `createSessionForUserAccessToken`). Tokens of a deactivated user never do.
 */
export function userOfToken(app: App, token: string): User | undefined {
  const user = app.store.userByToken(token);
  if (!user) return undefined;
  const pat = [...app.store.accessTokens.values()].find((t) => t.token === token);
  if (pat && (!pat.is_active || (!app.config.enableUserAccessTokens && !user.is_bot))) return undefined;
  return user;
}

/** Issue a new session token for a user (what logging in would give). */
export function issueSessionToken(store: Store, userId: string): string {
  const token = newId();
  store.tokens.set(token, userId);
  return token;
}

/** Create a personal access token (`POST /users/{id}/tokens`); the token string is only returned here. */
export function createAccessToken(store: Store, userId: string, description: string): UserAccessToken {
  const token = issueSessionToken(store, userId);
  const record = { id: newId(), token, user_id: userId, description, is_active: true };
  store.accessTokens.set(record.id, record);
  return { ...record };
}

/**
 * The user as `viewer` may see it: the user themself and admins get everything; others get the profile
 * without notification settings, password dates and auth data (`SanitizeProfile`).
 */
export function userView(user: User, viewer?: User): User {
  const copy = structuredClone(user);
  if (viewer && (viewer.id === user.id || isSystemAdmin(viewer))) return copy;
  const partial: Partial<User> = copy;
  delete partial.notify_props;
  delete partial.last_password_update;
  delete partial.email_verified;
  delete partial.mfa_active;
  return copy;
}

/**
 * Activate or deactivate a user (`PUT /users/{id}/active`). Deactivation keeps the tokens but they stop
 * authenticating. Publishes `user_updated` to everyone, as the real server does.
 */
export function setUserActive(app: App, user: User, active: boolean): void {
  const now = app.store.clock.now();
  user.delete_at = active ? 0 : now;
  user.update_at = now;
  app.publish(newEvent("user_updated", { user: userView(user) }));
}

/** The user's presence (offline when never seen). */
export function statusOf(store: Store, userId: string): Status {
  return store.statuses.get(userId) ??
    { user_id: userId, status: "offline", manual: false, last_activity_at: 0 };
}

/**
 * Set a user's automatic presence; like `SetStatusOnline`/`SetStatusOffline` it broadcasts
 * `status_change` (to that user's own connections only) when the status actually changes and leaves a
 * manually set status alone.
 */
export function setStatus(app: App, userId: string, status: "online" | "offline"): void {
  const current = statusOf(app.store, userId);
  if (current.manual || current.status === status) return;
  app.store.statuses.set(userId, {
    user_id: userId,
    status,
    manual: false,
    last_activity_at: app.store.clock.now(),
  });
  app.publish(newEvent("status_change", { status, user_id: userId }, { userId }));
}
