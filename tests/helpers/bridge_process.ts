/**
 * The bridge as its own process (`deno run main.ts`), as an operator runs it: its log, its `/healthz`, its exit.
 *
 * @module
 */
import { waitFor } from "./harness.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A running `main.ts`. Always {@linkcode BridgeProcess.stop} it. */
export interface BridgeProcess {
  /** Everything written to stderr and stdout so far (JSON log lines). */
  log(): string;
  /** Resolves with the exit code once the process has ended. */
  readonly exited: Promise<number>;
  /** True until the process has ended. */
  running(): boolean;
  /** The process id, for reading its memory and CPU from /proc. */
  readonly pid: number;
  /** `GET /healthz`: status and parsed body, or null while nothing listens. */
  healthz(): Promise<{ status: number; body: HealthBody } | null>;
  /** Waits until `/healthz` answers `status` (and, if given, says `ready`); returns the body. */
  waitForHealth(status: number, opts?: { ready?: boolean; timeoutMs?: number }): Promise<HealthBody>;
  /** Waits until the log has `count` lines matching `pattern`. */
  waitForLog(pattern: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then the exit code (SIGKILL after 10 s). Idempotent. */
  stop(): Promise<number>;
  /** SIGKILL at once, as a crash or the OOM killer would; then the exit code. */
  kill(): Promise<number>;
}

/** The `/healthz` answer. */
export interface HealthBody {
  ok: boolean;
  ready: boolean;
  bridges: Array<{ network: string; connected: boolean; detail: string }>;
  failedMappings: Array<{ mapping: string; error: string }>;
}

/**
 * Starts `main.ts` with exactly `env` (JSON logs at info unless `env` says otherwise), listening on `httpPort`;
 * `denoArgs` go before the script (e.g. the start task's `--v8-flags`).
 */
export function spawnBridge(
  env: Record<string, string>,
  httpPort: number,
  denoArgs: string[] = [],
): BridgeProcess {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", ...denoArgs, MAIN],
    env: { LOG_FORMAT: "json", LOG_LEVEL: "info", NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]);
  let ended = false;
  const exited = proc.status.then(async (s) => {
    ended = true;
    await drained;
    if (Deno.env.get("DEBUG_BRIDGE_LOG")) console.error(text);
    return s.code;
  });

  const healthz = async () => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`).catch(() => null);
    if (!res) return null;
    return { status: res.status, body: await res.json() as HealthBody };
  };
  return {
    log: () => text,
    pid: proc.pid,
    exited,
    running: () => !ended,
    healthz,
    async waitForHealth(status, { ready, timeoutMs = 20_000 } = {}) {
      let last: Awaited<ReturnType<typeof healthz>> = null;
      await waitFor(
        async () => {
          if (ended) throw new Error(`the bridge exited (${await exited})`);
          last = await healthz();
          return last?.status === status && (ready === undefined || last.body.ready === ready);
        },
        `/healthz ${status}`,
        timeoutMs,
      ).catch((err) => {
        throw new Error(`${err.message}; last answer: ${JSON.stringify(last)}; log:\n${text}`);
      });
      return last!.body;
    },
    async waitForLog(pattern, count = 1, timeoutMs = 20_000) {
      const global = new RegExp(
        pattern.source,
        pattern.flags.includes("g") ? pattern.flags : pattern.flags + "g",
      );
      await waitFor(
        () => (text.match(global)?.length ?? 0) >= count,
        `${count} log line(s) matching ${pattern}`,
        timeoutMs,
      )
        .catch((err) => {
          throw new Error(`${err.message}; log:\n${text}`);
        });
    },
    async stop() {
      if (!ended) {
        try {
          proc.kill("SIGTERM");
        } catch { /* already gone */ }
        const timer = setTimeout(() => {
          try {
            proc.kill("SIGKILL");
          } catch { /* already gone */ }
        }, 10_000);
        await proc.status;
        clearTimeout(timer);
      }
      return await exited;
    },
    async kill() {
      try {
        proc.kill("SIGKILL");
      } catch { /* already gone */ }
      return await exited;
    },
  };
}

/** Starts `main.ts` as {@linkcode spawnBridge} does and waits until `/healthz` says ready; kills it if it never does. */
export async function spawnReadyBridge(
  env: Record<string, string>,
  httpPort: number,
  denoArgs: string[] = [],
): Promise<BridgeProcess> {
  const bridge = spawnBridge(env, httpPort, denoArgs);
  try {
    await bridge.waitForHealth(200, { ready: true });
  } catch (err) {
    await bridge.kill();
    throw err;
  }
  return bridge;
}
