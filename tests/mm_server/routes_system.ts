/**
 * `/system/ping`, `/config/client`, `/config` and `/license/client`.
 *
 * @module
 */

import { AppError } from "./app_error.ts";
import { json, requireUser } from "./http.ts";
import { requireSystemAdmin } from "./permissions.ts";
import type { Router } from "./router.ts";

/** Register the system and configuration routes. */
export function registerSystemRoutes(router: Router): void {
  router.add("GET", "/system/ping", (ctx) => {
    const body: Record<string, unknown> = {
      ActiveSearchBackend: "database",
      AndroidLatestVersion: "",
      AndroidMinVersion: "",
      IosLatestVersion: "",
      IosMinVersion: "",
      status: "OK",
    };
    if (ctx.url.searchParams.get("get_server_status") === "true") {
      body.database_status = "OK";
      body.filestore_status = "OK";
    }
    return json(200, body);
  });

  router.add("GET", "/config/client", (ctx) => {
    if (ctx.url.searchParams.get("format") !== "old") {
      throw new AppError(
        "api.config.client.old_format.app_error",
        "New format for the client configuration is not supported yet. Please specify format=old in the query string.",
        501,
      );
    }
    const c = ctx.app.config;
    // config/client.go: GenerateLimitedClientConfig for anonymous callers, GenerateClientConfig (a superset)
    // for a session. An unknown token counts as anonymous here, as on any route that needs no session.
    const limited: Record<string, string> = {
      Version: c.version,
      BuildNumber: "0",
      SiteURL: c.siteUrl,
      SiteName: "Mattermost",
      EnableBotAccountCreation: "true",
      EnableCustomEmoji: "true",
      // Added by LimitedClientConfigWithComputed.
      NoAccounts: "false",
    };
    if (!ctx.user) return json(200, limited);
    return json(200, {
      ...limited,
      EnablePostUsernameOverride: String(c.enablePostUsernameOverride),
      EnablePostIconOverride: String(c.enablePostIconOverride),
      EnableUserAccessTokens: String(c.enableUserAccessTokens),
      EnableCommands: String(c.enableCommands),
      EnableFileAttachments: "true",
      MaxFileSize: String(c.maxFileSize),
      // Added by ClientConfigWithComputed.
      MaxPostSize: "16383",
      ExperimentalEnableHardenedMode: "false",
      TeammateNameDisplay: "username",
    });
  });

  router.add("GET", "/config", (ctx) => {
    requireSystemAdmin(requireUser(ctx), "sysconsole_read_environment");
    const c = ctx.app.config;
    return json(200, {
      ServiceSettings: {
        SiteURL: c.siteUrl,
        EnablePostUsernameOverride: c.enablePostUsernameOverride,
        EnablePostIconOverride: c.enablePostIconOverride,
        EnableUserAccessTokens: c.enableUserAccessTokens,
        EnableCommands: c.enableCommands,
        EnableBotAccountCreation: true,
        AllowedUntrustedInternalConnections: c.allowedUntrustedInternalConnections.join(" "),
        ExperimentalEnableHardenedMode: false,
      },
      FileSettings: { EnableFileAttachments: true, MaxFileSize: c.maxFileSize },
      RateLimitSettings: {
        Enable: c.rateLimit !== null,
        PerSec: c.rateLimit?.perSecond ?? 10,
        MaxBurst: c.rateLimit?.burst ?? 100,
        VaryByUser: true,
        VaryByRemoteAddr: false,
      },
    });
  });

  router.add("GET", "/license/client", () => json(200, { IsLicensed: "false" }));
}
