/**
 * The bridge's small HTTP listener (`BRIDGE_HTTP_ADDR`): the slash-command callback, health and metrics.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { BridgeError, errorMessage } from "./core/errors.ts";
import { listenProblem } from "./preflight.ts";

const log = getLogger(["mmxmpp", "http"]);

/** Handles one request. */
export type Handler = (req: Request) => Response | Promise<Response>;

/**
 * Routes requests by method and exact path.
 *
 * @example
 * ```ts
 * const http = new HttpServer();
 * http.route("GET", "/healthz", () => Response.json({ ok: true }));
 * await http.start({ hostname: "127.0.0.1", port: 8786 });
 * ```
 */
export class HttpServer {
  private readonly routes = new Map<string, Handler>();
  private server?: Deno.HttpServer<Deno.NetAddr>;

  /** Adds a route; a later call for the same method and path replaces it. */
  route(method: string, path: string, handler: Handler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  /** The address actually bound (useful with port 0). */
  get addr(): Deno.NetAddr | undefined {
    return this.server?.addr;
  }

  /** Starts listening. Rejects with a BridgeError naming BRIDGE_HTTP_ADDR when the address cannot be bound. */
  start(addr: { hostname: string; port: number }): Promise<void> {
    try {
      this.server = Deno.serve({ ...addr, onListen: () => {} }, (req) => this.handle(req));
    } catch (err) {
      // The settings are at fault (or another process holds the port): waiting would not help.
      return Promise.reject(new BridgeError(listenProblem(err, addr), { kind: "configuration", cause: err }));
    }
    log.info("Listening on http://{hostname}:{port}", {
      hostname: this.server.addr.hostname,
      port: this.server.addr.port,
    });
    return Promise.resolve();
  }

  /** Stops listening and closes open connections. */
  async stop(): Promise<void> {
    await this.server?.shutdown();
    this.server = undefined;
  }

  private async handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const handler = this.routes.get(`${req.method} ${path}`);
    if (!handler) {
      const allowed = [...this.routes.keys()].some((k) => k.endsWith(` ${path}`));
      return Response.json({ error: allowed ? "method not allowed" : "not found" }, {
        status: allowed ? 405 : 404,
      });
    }
    try {
      return await handler(req);
    } catch (err) {
      log.error("Request to {path} failed: {error}", {
        path,
        error: errorMessage(err),
      });
      return Response.json({ error: "internal error" }, { status: 500 });
    }
  }
}
