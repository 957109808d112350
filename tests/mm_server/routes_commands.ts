/**
 * Slash command routes: CRUD, token regeneration and `/commands/execute`.
 *
 * @module
 */

import { AppError, permissionError } from "./app_error.ts";
import {
  createCommand,
  deleteCommand,
  getCommand,
  listCommands,
  regenCommandToken,
  resolveCommand,
  runCommand,
  updateCommand,
} from "./commands.ts";
import { json, readJsonObject, requireUser, statusOk } from "./http.ts";
import { idParam } from "./lookup.ts";
import type { Router } from "./router.ts";

/** Register the slash command routes. */
export function registerCommandRoutes(router: Router): void {
  router.add("POST", "/commands", async (ctx) => {
    const actor = requireUser(ctx);
    const body = await readJsonObject(ctx, "command");
    return json(201, createCommand(ctx.app, actor, body));
  });

  router.add("GET", "/commands", (ctx) => {
    const actor = requireUser(ctx);
    const teamId = ctx.url.searchParams.get("team_id") ?? "";
    // strconv.ParseBool's spellings of true.
    const customOnly = ["1", "t", "T", "true", "TRUE", "True"].includes(
      ctx.url.searchParams.get("custom_only") ?? "",
    );
    return json(200, listCommands(ctx.app, actor, teamId, customOnly));
  });

  router.add("GET", "/commands/:command_id", (ctx) => {
    const actor = requireUser(ctx);
    return json(200, getCommand(ctx.app, actor, ctx.params.command_id));
  });

  router.add("PUT", "/commands/:command_id", async (ctx) => {
    const actor = requireUser(ctx);
    const id = idParam(ctx, "command_id");
    const body = await readJsonObject(ctx, "command");
    return json(200, updateCommand(ctx.app, actor, id, body));
  });

  router.add("PUT", "/commands/:command_id/regen_token", (ctx) => {
    const actor = requireUser(ctx);
    return json(200, { token: regenCommandToken(ctx.app, actor, ctx.params.command_id) });
  });

  router.add("DELETE", "/commands/:command_id", (ctx) => {
    const actor = requireUser(ctx);
    deleteCommand(ctx.app, actor, ctx.params.command_id);
    return statusOk();
  });

  router.add("POST", "/commands/execute", async (ctx) => {
    const actor = requireUser(ctx);
    const body = await readJsonObject(ctx, "command_args");
    const command = typeof body.command === "string" ? body.command : "";
    if (!command.startsWith("/")) {
      throw new AppError("api.command.execute_command.start.app_error", "No command trigger found.", 400);
    }
    ctx.params.channel_id = String(body.channel_id ?? "");
    const channelId = idParam(ctx, "channel_id");
    const channel = ctx.app.store.channels.get(channelId);
    if (!channel) throw permissionError("use_slash_commands");
    const [trigger, ...rest] = command.slice(1).split(" ");
    const cmd = resolveCommand(ctx.app, actor, channel, trigger);
    const result = await runCommand(ctx.app, actor, channel, cmd, rest.join(" "));
    if (result.status !== 200) {
      throw new AppError(
        "api.command.execute_command.failed_resp.app_error",
        `Command with a trigger of '/${cmd.trigger}' returned response ${result.status}.`,
        500,
      );
    }
    const response = typeof result.body === "object" && result.body !== null
      ? result.body
      : { text: result.body };
    return json(200, { response_type: "ephemeral", ...response });
  });
}
