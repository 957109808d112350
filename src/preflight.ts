/**
 * Checks of the local things the settings name, which only this machine can tell: that the state file
 * (`BRIDGE_KV_PATH`) can be created and written, and that the listen address (`BRIDGE_HTTP_ADDR`) can be bound.
 * `--check-config` runs them; the start reports the same messages when opening or binding fails.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { errorMessage } from "./core/errors.ts";

/**
 * What is wrong with `path` as the state file, or undefined when it can be used: an existing file must be readable
 * and writable; otherwise the nearest existing directory above it must be a writable directory (the start creates
 * the missing ones). Leaves nothing behind.
 *
 * @example
 * ```ts
 * kvPathProblem("/proc/mmxmpp.kv"); // "BRIDGE_KV_PATH /proc/mmxmpp.kv: cannot create files in /proc (…)"
 * ```
 */
export function kvPathProblem(path: string, variable = "BRIDGE_KV_PATH"): string | undefined {
  if (path === ":memory:") return undefined;
  const full = resolve(path);
  const at = `${variable} ${path}`;
  const stat = statOf(full);
  if (stat?.isDirectory) return `${at} is a directory: name a file in it, e.g. ${full}/mmxmpp.kv`;
  if (stat) {
    try {
      Deno.openSync(full, { read: true, write: true }).close();
      return undefined;
    } catch (err) {
      return `${at}: the state file cannot be opened for writing (${reason(err)}); ${ownerHint(full)}`;
    }
  }
  // The nearest directory that exists: the start creates the rest below it.
  let dir = dirname(full);
  while (!statOf(dir) && dirname(dir) !== dir) dir = dirname(dir);
  const dirStat = statOf(dir);
  if (!dirStat?.isDirectory) return `${at}: ${dir} is not a directory`;
  try {
    Deno.removeSync(Deno.makeTempFileSync({ dir, prefix: ".mmxmpp-check-" }));
    return undefined;
  } catch (err) {
    return `${at}: cannot create files in ${dir} (${reason(err)}); ${ownerHint(dir)}, or choose another path`;
  }
}

/**
 * What is wrong with listening on `addr`, from the error binding it gave, naming the variable and what to do.
 *
 * @example
 * ```ts
 * listenProblem(new Deno.errors.AddrInUse("…"), { hostname: "127.0.0.1", port: 8786 });
 * ```
 */
export function listenProblem(
  err: unknown,
  addr: { hostname: string; port: number },
  variable = "BRIDGE_HTTP_ADDR",
): string {
  const where = `${variable} ${
    addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname
  }:${addr.port}`;
  if (err instanceof Deno.errors.AddrInUse) {
    const holder = listenerOf(addr.port);
    return `${where}: the port is already in use by ${holder ?? "another process (another mmxmpp?)"}; ` +
      (holder ? "" : `see which with \`ss -ltnp 'sport = :${addr.port}'\`, `) +
      `stop it or set ${variable} to a free port`;
  }
  if (err instanceof Deno.errors.AddrNotAvailable) {
    return `${where}: ${addr.hostname} is not an address of this machine; use one of its addresses, 127.0.0.1 ` +
      "or 0.0.0.0";
  }
  if (err instanceof Deno.errors.PermissionDenied && addr.port < 1024) {
    return `${where}: ports below 1024 need privileges; use a port from 1024 up (the default is 8786)`;
  }
  if (/lookup|resolve|getaddrinfo|Name or service/i.test(reason(err))) {
    return `${where}: the host name ${addr.hostname} does not resolve; use an IP address such as 127.0.0.1`;
  }
  return `${where}: cannot listen (${reason(err)})`;
}

/**
 * Binds `addr` for a moment to see whether the bridge could listen there; the problem, or undefined. (Another
 * process may still take the port before the bridge starts.)
 */
export function httpAddrProblem(addr: { hostname: string; port: number }): string | undefined {
  try {
    Deno.listen({ hostname: addr.hostname, port: addr.port }).close();
    return undefined;
  } catch (err) {
    return listenProblem(err, addr);
  }
}

/**
 * The process listening on TCP `port`, as "process 1234 (name)", when Linux's /proc tells (only processes this user
 * may inspect); undefined elsewhere or when it cannot be found.
 */
export function listenerOf(port: number): string | undefined {
  try {
    const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
    const inodes = new Set<string>();
    for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      for (const line of Deno.readTextFileSync(table).split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        // local_address is ADDR:PORT in hex; state 0A is LISTEN; field 9 is the socket's inode.
        if (f[1]?.endsWith(`:${hexPort}`) && f[3] === "0A") inodes.add(`socket:[${f[9]}]`);
      }
    }
    if (inodes.size === 0) return undefined;
    for (const proc of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(proc.name)) continue;
      try {
        for (const fd of Deno.readDirSync(`/proc/${proc.name}/fd`)) {
          if (inodes.has(Deno.readLinkSync(`/proc/${proc.name}/fd/${fd.name}`))) {
            const name = Deno.readTextFileSync(`/proc/${proc.name}/comm`).trim();
            return `process ${proc.name} (${name})`;
          }
        }
      } catch { /* gone, or not ours to inspect */ }
    }
  } catch { /* not Linux, or no --allow-read */ }
  return undefined;
}

function statOf(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

function reason(err: unknown): string {
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  // "Read-only file system (os error 30): open '/x'" → "Read-only file system"
  return errorMessage(err).replace(/ \(os error \d+\).*$/, "");
}

/** Who must be able to write there. */
function ownerHint(path: string): string {
  let uid: number | null = null;
  try {
    uid = Deno.uid();
  } catch { /* no --allow-sys */ }
  return `it must be writable by the user the bridge runs as${
    uid === null ? "" : ` (uid ${uid})`
  }: fix the ` +
    `owner or mode of ${path}`;
}
