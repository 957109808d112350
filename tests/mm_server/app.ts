/**
 * What the domain operations (posts, channels, users, commands…) share: the store, the live
 * configuration and the event publisher.
 *
 * @module
 */

import type { WsEvent } from "./events.ts";
import type { Store } from "./store.ts";

/** Rate limit settings (`RateLimitSettings`). */
export interface RateLimitConfig {
  perSecond: number;
  burst: number;
  /** `VaryByRemoteAddr`: one bucket per client address (default true, as on the server). */
  varyByRemoteAddr?: boolean;
  /** `VaryByUser`: one bucket per session token (default false, as on the server). */
  varyByUser?: boolean;
}

/** The parts of the server configuration the stand-in honours; mutable while the server runs. */
export interface ServerConfig {
  /** Version reported by `/system/ping`, `/config/client` and the `hello` event. */
  version: string;
  /** `ServiceSettings.SiteURL`. */
  siteUrl: string;
  /** `ServiceSettings.EnablePostUsernameOverride`. */
  enablePostUsernameOverride: boolean;
  /** `ServiceSettings.EnablePostIconOverride`. */
  enablePostIconOverride: boolean;
  /** `ServiceSettings.EnableUserAccessTokens`. */
  enableUserAccessTokens: boolean;
  /** `ServiceSettings.EnableCommands` (custom slash commands). */
  enableCommands: boolean;
  /** `FileSettings.MaxFileSize` in bytes. */
  maxFileSize: number;
  /** `ServiceSettings.EnableCustomEmoji` (default true): without it, a reaction with a non-system name is 403. */
  enableCustomEmoji: boolean;
  /** `ServiceSettings.UniqueEmojiReactionLimitPerPost` (default 50): distinct emoji one post may have. */
  uniqueEmojiReactionLimitPerPost: number;
  /** `RateLimitSettings`; null when disabled. */
  rateLimit: RateLimitConfig | null;
  /** `ServiceSettings.AllowedUntrustedInternalConnections`: hosts a slash command may call on loopback/private addresses. */
  allowedUntrustedInternalConnections: string[];
}

/** The context every domain operation runs in. */
export interface App {
  /** All state. */
  store: Store;
  /** Live configuration. */
  config: ServerConfig;
  /** Hand an event to the WebSocket hub for delivery. */
  publish(event: WsEvent): void;
  /** Whether the user currently has an open, authenticated WebSocket (used for `@here`). */
  isConnected(userId: string): boolean;
  /** How long a `pending_post_id` de-duplicates creates (`pendingPostIDsCacheTTL`, 30 s). */
  pendingPostIdTtlMs: number;
  /** Test hook: while set, `POST /posts` waits for it after claiming its `pending_post_id` (a create in flight). */
  holdCreate?: () => Promise<void>;
}
