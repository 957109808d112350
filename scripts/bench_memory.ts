/**
 * The idle part of `deno task bench`'s memory section: how much memory the bridge holds when it is connected and
 * has nothing to do, and where that memory goes. Every process here is started with the flags of the `start` task
 * in deno.json, so the numbers are those of what ships; the same run also measures a bare Deno process, the floor
 * no change to the bridge can go below.
 *
 * RSS is split as the kernel does (/proc/PID/status): RssAnon is the process's own memory (V8 heap, malloc,
 * stacks); RssFile is pages of the mapped `deno` binary and libraries, shared with every other Deno process and
 * dropped first under memory pressure.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { type MemorySnapshot, PROBE_PREFIX } from "./memory_probe.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const PROBE = `${ROOT}/scripts/memory_probe.ts`;
/** Seconds of quiet after `/healthz` first says ready, before RSS is read. */
const SETTLE_MS = 3_000;
/**
 * How long the bridge is watched after the load: V8 keeps the heap it grew for a while and gives it back once the
 * heap has been quiet (its memory reducer starts 8 s into quiet); 12-17 s after a load on this machine.
 */
const AFTER_LOAD_MS = 40_000;
/** Fresh bridge processes per variant; the median is reported. */
const REPS = 3;

/** The `start` task of deno.json, taken apart. */
export interface StartCommand {
  /** The whole task, as written. */
  task: string;
  /** `NAME=value` words before `deno`. */
  env: Record<string, string>;
  /** `deno run` flags other than `--v8-flags`. */
  denoFlags: string[];
  /** The V8 flags, without `--v8-flags=`. */
  v8Flags: string[];
  /** The script, relative to the repository. */
  entry: string;
}

/** Reads the `start` task from deno.json. */
export function startCommand(root = ROOT): StartCommand {
  const task = JSON.parse(Deno.readTextFileSync(`${root}/deno.json`)).tasks.start as string;
  const words = task.trim().split(/\s+/);
  const env: Record<string, string> = {};
  while (/^[A-Z_][A-Z0-9_]*=/.test(words[0])) {
    const [name, ...value] = words.shift()!.split("=");
    env[name] = value.join("=");
  }
  if (words[0] !== "deno" || words[1] !== "run") {
    throw new Error(`deno.json task start is not "deno run": ${task}`);
  }
  const rest = words.slice(2);
  const entry = rest.pop();
  if (!entry?.endsWith(".ts")) throw new Error(`deno.json task start does not end with a script: ${task}`);
  const v8Flags = rest.filter((w) => w.startsWith("--v8-flags=")).flatMap((w) =>
    w.slice("--v8-flags=".length).split(",")
  ).filter((f) => f !== "");
  return { task, env, denoFlags: rest.filter((w) => !w.startsWith("--v8-flags=")), v8Flags, entry };
}

/** RSS and its parts, in bytes, as the kernel counts them. */
export interface Rss {
  rss: number;
  rssAnon: number;
  rssFile: number;
}

function readRss(pid: number): Rss {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (field: string) =>
    Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0) * 1024;
  return { rss: kib("VmRSS"), rssAnon: kib("RssAnon"), rssFile: kib("RssFile") };
}

/**
 * The start task's flags for {@link PROBE}: its permissions become --allow-all, because Deno lets only that read
 * /proc/self; permissions take no memory worth counting.
 */
function probeFlags(start: StartCommand): string[] {
  return [...start.denoFlags.filter((f) => !f.startsWith("--allow-")), "--allow-all"];
}

function v8Arg(flags: string[]): string[] {
  return flags.length > 0 ? [`--v8-flags=${flags.join(",")}`] : [];
}

/** Waits until the bridge's `/healthz` answers 200 (connected, every mapping joined). */
async function waitReady(httpAddr: string, exited: () => boolean, what: string): Promise<void> {
  const until = performance.now() + 60_000;
  while (performance.now() < until) {
    if (exited()) throw new Error(`${what} exited before it was ready`);
    const res = await fetch(`http://${httpAddr}/healthz`).catch(() => undefined);
    await res?.body?.cancel();
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} was not ready within 60 s`);
}

/** Lines starting with {@link PROBE_PREFIX} on a child's stdout, parsed, as they arrive. */
async function* probeLines(stdout: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  let buf = "";
  for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith(PROBE_PREFIX)) yield JSON.parse(line.slice(PROBE_PREFIX.length));
    }
  }
}

/** Import groups, in the order the start path loads them; each row adds one to the ones above. */
const IMPORT_GROUPS: Array<[string, string[]]> = [
  ["node: built-ins (util, crypto, path, net, tls)", [
    "node:util",
    "node:crypto",
    "node:path",
    "node:net",
    "node:tls",
  ]],
  ["@logtape/logtape, @logtape/redaction", ["@logtape/logtape", "@logtape/redaction"]],
  ["@mattermost/client", ["@mattermost/client"]],
  ["@xmpp/* and saslmechanisms", [
    "@xmpp/client-core",
    "@xmpp/reconnect",
    "@xmpp/tcp",
    "@xmpp/tls/lib/Connection.js",
    "@xmpp/middleware",
    "@xmpp/stream-features",
    "@xmpp/iq/caller.js",
    "@xmpp/iq/callee.js",
    "@xmpp/sasl",
    "sasl-scram-sha-1",
    "@xmpp/sasl-plain",
    "@xmpp/resource-binding",
    "saslmechanisms",
  ]],
  ["mmxmpp's start path (main.ts and what it imports)", ["../main.ts"]],
  ["loaded only on demand: doctor, mappings CLI, SRV discovery, IBR and component ghosts", [
    "../doctor.ts",
    "../src/cli/mappings.ts",
    "../src/xmpp/session/srv.ts",
    "../src/xmpp/intents/ibr_ghosts.ts",
    "../src/xmpp/intents/puppets.ts",
  ]],
];

/** One row of the import breakdown. */
export interface ImportStep extends Rss {
  step: string;
  heapUsed: number;
}

/**
 * Runs {@link PROBE} with `args` (with the start task's V8 flags and --expose-gc) to its end; its snapshots, each
 * named by `name`.
 */
async function probeSteps(
  start: StartCommand,
  args: string[],
  name: (snap: MemorySnapshot, i: number) => string,
): Promise<ImportStep[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...probeFlags(start), ...v8Arg([...start.v8Flags, "--expose-gc"]), PROBE, ...args],
    cwd: ROOT,
    env: start.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`memory_probe.ts ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const steps: ImportStep[] = [];
  for await (const s of probeLines(ReadableStream.from([out.stdout]))) {
    const snap = s as MemorySnapshot;
    steps.push({
      step: name(snap, steps.length),
      rss: snap.rss,
      rssAnon: snap.rssAnon,
      rssFile: snap.rssFile,
      heapUsed: snap.heapUsed,
    });
  }
  return steps;
}

/** A process importing {@link IMPORT_GROUPS} one after another, with a forced GC after each. */
function importSteps(start: StartCommand): Promise<ImportStep[]> {
  const names = ["bare `deno run` (the probe, nothing imported)", ...IMPORT_GROUPS.map(([name]) => name)];
  return probeSteps(
    start,
    ["imports", ...IMPORT_GROUPS.map(([, specs]) => specs.join(","))],
    (_, i) => names[i],
  );
}

/** The parts of Deno's runtime the bridge uses, by {@link RUNTIME_STEPS}' labels, as the table names them. */
const RUNTIME_STEPS: Record<string, string> = {
  bare: "bare `deno run` (the probe, nothing used)",
  kv: "Deno KV: a file store opened, one write, one read",
  http: "HTTP: `Deno.serve` and one `fetch` to it",
  tls: "TLS: one handshake and exchange (`Deno.listenTls`, `Deno.connectTls`)",
  websocket: "WebSocket: one connection and one message",
  "node-tls": "`node:tls`: one client handshake through Deno's Node layer (what @xmpp/tls uses)",
};

/**
 * A process using each part of Deno's runtime the bridge needs, once, with no npm module and none of our code: the
 * floor under the bridge's idle RSS that no change to mmxmpp can go below.
 */
async function runtimeSteps(start: StartCommand): Promise<ImportStep[]> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-bench-runtime-" });
  try {
    const made = await new Deno.Command("openssl", {
      args: [
        ..."req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost"
          .split(" "),
        ...["-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE"],
        ...["-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`],
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!made.success) throw new Error(`openssl failed: ${new TextDecoder().decode(made.stderr)}`);
    return await probeSteps(
      start,
      ["runtime", `${dir}/cert.pem`, `${dir}/key.pem`],
      (snap) => RUNTIME_STEPS[snap.label] ?? snap.label,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A bare `deno run` of an empty script with `v8Flags`: the floor. */
async function bareRss(start: StartCommand, v8Flags: string[]): Promise<Rss> {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-bench-bare-" });
  try {
    await Deno.writeTextFile(`${dir}/empty.ts`, "setTimeout(() => {}, 60_000);\n");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...start.denoFlags, ...v8Arg(v8Flags), `${dir}/empty.ts`],
      env: start.env,
      stdout: "null",
      stderr: "null",
    }).spawn();
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rss = readRss(child.pid);
    child.kill("SIGTERM");
    await child.status;
    return rss;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The idle bridge, started as `deno task start` does (with `v8Flags`), read from outside after it settled. */
async function bridgeRss(start: StartCommand, v8Flags: string[], env: Record<string, string>): Promise<Rss> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...start.denoFlags, ...v8Arg(v8Flags), `${ROOT}/${start.entry}`],
    cwd: ROOT,
    env: { ...start.env, ...env },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  try {
    await waitReady(env.BRIDGE_HTTP_ADDR, () => exited, "the bridge");
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return readRss(child.pid);
  } finally {
    if (!exited) child.kill("SIGTERM");
    await status;
  }
}

/**
 * The idle bridge inside {@link PROBE}: RSS with the V8 heap split, before and after a forced GC; then again after
 * `load` ran and the bridge was left alone for a while.
 */
async function probedBridge(
  start: StartCommand,
  env: Record<string, string>,
  load: () => Promise<void>,
): Promise<{ fresh: MemorySnapshot[]; loaded: MemorySnapshot[]; afterLoad: Array<Rss & { ms: number }> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...probeFlags(start), ...v8Arg([...start.v8Flags, "--expose-gc"]), PROBE, "bridge"],
    cwd: ROOT,
    env: { ...start.env, ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderrTail = "";
  const stderrDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrTail = (stderrTail + chunk).slice(-2_000);
    }
  })();
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  const lines = probeLines(child.stdout);
  const writer = child.stdin.getWriter();
  try {
    await waitReady(env.BRIDGE_HTTP_ADDR, () => exited, "the probed bridge");
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const ask = async () => {
      await writer.write(new TextEncoder().encode("mem\n"));
      const next = await lines.next();
      if (next.done) throw new Error(`the probed bridge answered nothing; its stderr ends:\n${stderrTail}`);
      return next.value as MemorySnapshot[];
    };
    const fresh = await ask();
    await load();
    // Watched from outside, so that no forced GC changes what V8 does by itself.
    const afterLoad = [];
    for (let ms = 1_000; ms <= AFTER_LOAD_MS; ms += 1_000) {
      await new Promise((r) => setTimeout(r, 1_000));
      afterLoad.push({ ms, ...readRss(child.pid) });
    }
    return { fresh, loaded: await ask(), afterLoad };
  } finally {
    await writer.close().catch(() => {});
    if (!exited) child.kill("SIGTERM");
    await status;
    await lines.return(undefined);
    await stderrDone;
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

function medianRss(samples: Rss[]): Rss & { samples: number[] } {
  // The sample whose RSS is the median, so that its parts add up.
  const rss = median(samples.map((s) => s.rss));
  const mid = samples.find((s) => s.rss === rss)!;
  return { ...mid, samples: samples.map((s) => s.rss) };
}

/**
 * Measures the idle bridge: `env(i)` is the bridge's environment for the i-th process (a fresh state file and
 * HTTP port each); `load` sends `loadMessages` messages through the bridge and resolves once they all arrived.
 * Nothing else may run meanwhile.
 */
export async function idleMemory(
  env: (i: number) => Record<string, string>,
  load: () => Promise<void>,
  loadMessages: number,
): Promise<Record<string, unknown>> {
  const start = startCommand();
  let n = 0;
  const bare = await bareRss(start, []);
  const bareFlags = await bareRss(start, start.v8Flags);
  const withFlags: Rss[] = [];
  const without: Rss[] = [];
  // Interleaved, so that drift in the machine's load hits both alike.
  for (let r = 0; r < REPS; r++) {
    withFlags.push(await bridgeRss(start, start.v8Flags, env(n++)));
    without.push(await bridgeRss(start, [], env(n++)));
  }
  const probed = await probedBridge(start, env(n++), load);
  const [idle, afterGc] = probed.fresh;
  const [loadedIdle, loadedAfterGc] = probed.loaded;
  const imports = await importSteps(start);
  const runtime = await runtimeSteps(start);
  return {
    start_task: start.task,
    v8_flags: start.v8Flags,
    settle_ms: SETTLE_MS,
    reps: REPS,
    bare_default_flags: bare,
    bare_start_flags: bareFlags,
    bridge_start_flags: medianRss(withFlags),
    bridge_default_flags: medianRss(without),
    probe_idle: idle,
    probe_after_gc: afterGc,
    load_messages: loadMessages,
    after_load: probed.afterLoad,
    probe_loaded_idle: loadedIdle,
    probe_loaded_after_gc: loadedAfterGc,
    imports,
    runtime,
  };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(" | ")} |`;
  return [line(rows[0]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)]
    .join("\n");
}

/** The idle tables of `bench/results.md`, from {@link idleMemory}'s result. */
// deno-lint-ignore no-explicit-any
export function renderIdle(m: any): string {
  const flags = m.v8_flags.length > 0 ? `\`--v8-flags=${m.v8_flags.join(",")}\`` : "no V8 flags";
  const space = (s: MemorySnapshot, name: string) =>
    s.spaces?.[name] ? `${mib(s.spaces[name].size)} (${mib(s.spaces[name].used)} live)` : "–";
  const row = (name: string, r: Rss, extra: string[] = ["–", "–", "–"]) => [
    name,
    mib(r.rss),
    mib(r.rssAnon),
    mib(r.rssFile),
    ...extra,
  ];
  const heap = (s: MemorySnapshot) => [mib(s.heapUsed), space(s, "new_space"), space(s, "old_space")];
  const out = [
    `#### Idle: connected to both servers, nothing to do (${
      m.settle_ms / 1000
    } s after /healthz said ready)\n`,
    `The start task: \`${m.start_task}\` (${flags}). Bridge rows are the median of ${m.reps} fresh processes.\n`,
    table([
      [
        "process",
        "RSS",
        "RssAnon (own)",
        "RssFile (binary, shared)",
        "V8 heapUsed",
        "new space",
        "old space",
      ],
      row("bare `deno run` of an empty script, no V8 flags", m.bare_default_flags),
      row("bare `deno run` of an empty script, start task's V8 flags", m.bare_start_flags),
      row("bridge as `deno task start` runs it", m.bridge_start_flags),
      row("bridge without the V8 flags", m.bridge_default_flags),
      row("bridge in memory_probe.ts (+ --expose-gc), idle", m.probe_idle, heap(m.probe_idle)),
      row("the same, after a forced GC", m.probe_after_gc, heap(m.probe_after_gc)),
      row(`the same bridge 3 s after ${m.load_messages} messages`, m.after_load[2]),
      row(
        `the same, ${m.after_load.at(-1).ms / 1000} s after them`,
        m.probe_loaded_idle,
        heap(m.probe_loaded_idle),
      ),
      row("the same, after a forced GC", m.probe_loaded_after_gc, heap(m.probe_loaded_after_gc)),
    ]),
    "",
    `After the ${m.load_messages} messages, RSS each second: ` +
    m.after_load.map((r: Rss) => (r.rss / 1024 / 1024).toFixed(1)).join(", ") + " MiB.",
    "",
    `Same-run ratios: bridge / bare Deno = ${
      (m.bridge_start_flags.rss / m.bare_start_flags.rss).toFixed(2)
    }× ` +
    `(RssAnon ${
      (m.bridge_start_flags.rssAnon / m.bare_start_flags.rssAnon).toFixed(2)
    }×); with the V8 flags / ` +
    `without = ${(m.bridge_start_flags.rss / m.bridge_default_flags.rss).toFixed(2)}× (RssAnon ${
      (m.bridge_start_flags.rssAnon / m.bridge_default_flags.rssAnon).toFixed(2)
    }×). Samples (RSS): with flags ${m.bridge_start_flags.samples.map(mib).join(", ")}; without ${
      m.bridge_default_flags.samples.map(mib).join(", ")
    }.`,
    "",
    "#### Where it goes: modules imported one group after another (one process, forced GC after each)\n",
    table([
      ["step", "RSS", "Δ RSS", "RssAnon", "RssFile", "V8 heapUsed"],
      ...m.imports.map((s: ImportStep, i: number) => [
        s.step,
        mib(s.rss),
        i === 0 ? "–" : `+${mib(s.rss - m.imports[i - 1].rss)}`,
        mib(s.rssAnon),
        mib(s.rssFile),
        mib(s.heapUsed),
      ]),
    ]),
  ];
  if (m.runtime) {
    const steps = (rows: ImportStep[]) =>
      rows.map((s: ImportStep, i: number) => [
        s.step,
        mib(s.rss),
        i === 0 ? "–" : `+${mib(s.rss - rows[i - 1].rss)}`,
        mib(s.rssAnon),
        mib(s.rssFile),
        mib(s.heapUsed),
      ]);
    const last = m.runtime[m.runtime.length - 1];
    out.push(
      "",
      "#### The floor: Deno's own runtime, each part the bridge uses, used once (no npm module, none of our code)\n",
      table([["step", "RSS", "Δ RSS", "RssAnon", "RssFile", "V8 heapUsed"], ...steps(m.runtime)]),
      "",
      `The runtime alone ends at ${mib(last.rss)}; the idle bridge (${mib(m.bridge_start_flags.rss)}) is ` +
        `${(m.bridge_start_flags.rss / last.rss).toFixed(2)}× that, ${
          mib(m.bridge_start_flags.rss - last.rss)
        } above it (same run). The parts add ${mib(last.rss - m.runtime[0].rss)} to the probe's bare row; ` +
        `added to the bare \`deno run\` of an empty script above (${mib(m.bare_start_flags.rss)}), that is ${
          mib(m.bare_start_flags.rss + last.rss - m.runtime[0].rss)
        }.`,
    );
  }
  return out.join("\n");
}
