/**
 * `deno task compile` (scripts/compile.sh): the single binary that is shipped.
 *
 * Compiling needs `denort`, the runtime deno compile builds the executable from. It is taken from `DENORT_BIN`, or
 * from the copy Deno caches in `$DENO_DIR/dl/release/v<version>/` after a download from dl.deno.land. Without either
 * (no internet here) the binary test is registered as ignored, with the reason printed: it is never faked.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const script = join(root, "scripts", "compile.sh");

/** Where Deno keeps downloaded denort archives, from `deno info --json`. */
function denoDir(): string | undefined {
  try {
    const out = new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      stdout: "piped",
      stderr: "null",
    })
      .outputSync();
    if (!out.success) return undefined;
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: unknown };
    return typeof info.denoDir === "string" ? info.denoDir : undefined;
  } catch {
    return undefined;
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Why no denort can be had, or undefined when one can. */
function missingDenort(): string | undefined {
  const fromEnv = Deno.env.get("DENORT_BIN");
  if (fromEnv) return isFile(fromEnv) ? undefined : `DENORT_BIN=${fromEnv} is not a file`;
  const dir = denoDir();
  const cached = dir &&
    join(dir, "dl", "release", `v${Deno.version.deno}`, `denort-${Deno.build.target}.zip`);
  if (cached && isFile(cached)) return undefined;
  return `no denort binary (set DENORT_BIN, or cache ${cached ?? "denort in DENO_DIR/dl"})`;
}

const skipReason = missingDenort();
if (skipReason) console.log(`compile test skipped: ${skipReason}`);

async function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; clearEnv?: boolean; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    env: options.env,
    clearEnv: options.clearEnv,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test({
  name: "compile: the binary prints its version and help, and rejects bad env with exit code 2",
  ignore: skipReason !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mmxmpp-compile-" });
    try {
      const bin = join(dir, "mmxmpp");
      const compiled = await run("bash", [script, "--output", bin], { cwd: root, timeoutMs: 15 * 60_000 });
      assert.equal(compiled.code, 0, `compile.sh failed:\n${compiled.stdout}\n${compiled.stderr}`);
      assert.ok(isFile(bin), `compile.sh did not write ${bin}`);

      const version = await run(bin, ["--version"], { cwd: dir });
      assert.equal(version.code, 0, `--version exited ${version.code}: ${version.stderr}`);
      // A denort that is really the deno CLI would print "deno 2.x" here instead.
      assert.match(version.stdout, /^mmxmpp \S*\d+\.\d+/m, `unexpected --version output: ${version.stdout}`);
      assert.doesNotMatch(version.stdout, /^deno /m);

      const help = await run(bin, ["--help"], { cwd: dir });
      assert.equal(help.code, 0, `--help exited ${help.code}: ${help.stderr}`);
      for (const name of ["MM_URL", "MM_TOKEN_FILE", "XMPP_JID", "XMPP_PASSWORD_FILE", "BRIDGE_KV_PATH"]) {
        assert.ok(help.stdout.includes(name), `--help does not list ${name}`);
      }

      // Only PATH is kept: MM_URL lacks a scheme, XMPP_JID lacks an "@", the secrets are missing.
      const bad = await run(bin, ["--check-config"], {
        cwd: dir,
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          MM_URL: "chat.example.org",
          XMPP_JID: "bridge",
        },
      });
      assert.equal(
        bad.code,
        2,
        `--check-config with bad env exited ${bad.code}:\n${bad.stdout}\n${bad.stderr}`,
      );
      assert.match(bad.stderr, /MM_URL/);
      assert.match(bad.stderr, /XMPP_JID/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("compile: a DENORT_BIN that does not exist is reported, and nothing is written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-compile-" });
  try {
    const bin = join(dir, "mmxmpp");
    const missing = join(dir, "no-such-denort");
    const res = await run("bash", [script, "--output", bin], {
      cwd: root,
      env: { DENORT_BIN: missing },
    });
    assert.notEqual(res.code, 0);
    assert.ok(
      res.stderr.includes(`DENORT_BIN=${missing}`),
      `stderr does not name DENORT_BIN:\n${res.stderr}`,
    );
    assert.ok(!isFile(bin), "a binary was written without a denort");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile: a DENORT_BIN that is not denort fails the build and leaves no binary", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-compile-" });
  try {
    // Any executable "compiles": deno compile appends the program to it. The result ignores the program.
    const fake = join(dir, "denort");
    await Deno.copyFile("/bin/true", fake);
    await Deno.chmod(fake, 0o755);
    const bin = join(dir, "mmxmpp");
    const res = await run("bash", [script, "--output", bin], {
      cwd: root,
      env: { DENORT_BIN: fake },
      timeoutMs: 5 * 60_000,
    });
    assert.equal(res.code, 1, `compile.sh exited ${res.code}:\n${res.stderr}`);
    assert.match(res.stderr, /the written binary is not mmxmpp/);
    assert.ok(res.stderr.includes(`DENORT_BIN=${fake} is not denort`), res.stderr);
    assert.ok(!isFile(bin), "the wrong binary was left in place");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile: deno compile gets the start task's V8 flags, so the binary runs with them", async () => {
  const start = JSON.parse(Deno.readTextFileSync(join(root, "deno.json"))).tasks.start as string;
  const flags = start.match(/--v8-flags=\S+/)?.[0];
  assert.ok(flags, `deno.json's start task sets no --v8-flags: ${start}`);
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-compile-" });
  try {
    // Any executable "compiles" (see above); what matters here is the deno compile command the script ran.
    const fake = join(dir, "denort");
    await Deno.copyFile("/bin/true", fake);
    await Deno.chmod(fake, 0o755);
    const res = await run("bash", [script, "--output", join(dir, "mmxmpp")], {
      cwd: root,
      env: { DENORT_BIN: fake },
      timeoutMs: 5 * 60_000,
    });
    const command = res.stderr.split("\n").find((l) => l.startsWith("compile.sh: deno compile "));
    assert.ok(command, `compile.sh did not run deno compile:\n${res.stderr}`);
    assert.ok(command.split(" ").includes(flags), `deno compile ran without ${flags}: ${command}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A server that accepts connections and never answers, as a stalled download would. */
function stallingServer(): { url: string; accepted: () => number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch { /* closed */ }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    accepted: () => conns.length,
    close: () => {
      listener.close();
      for (const c of conns) c.close();
    },
  };
}

/** Pids of processes whose command line contains `marker` (other than this test). */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(marker)) found.push(Number(entry.name));
    } catch { /* exited meanwhile */ }
  }
  return found;
}

/** Environment for a compile that must download denort into an empty Deno cache, from `base`. */
async function downloadEnv(base: string, stallSeconds: number) {
  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-compile-" });
  const tmp = join(dir, "tmp");
  await Deno.mkdir(tmp);
  return {
    dir,
    tmp,
    env: {
      DENO_DIR: join(dir, "deno"),
      TMPDIR: tmp,
      DENORT_BIN: "",
      DENORT_DOWNLOAD_BASE: base,
      COMPILE_STALL_SECONDS: String(stallSeconds),
    },
  };
}

Deno.test({
  name: "compile: a stalled denort download fails after COMPILE_STALL_SECONDS, saying so",
  ignore: !isFile("/usr/bin/curl"),
  async fn() {
    const server = stallingServer();
    const { dir, tmp, env } = await downloadEnv(server.url, 2);
    try {
      const bin = join(dir, "mmxmpp");
      const started = Date.now();
      const res = await run("bash", [script, "--output", bin], { cwd: root, env, timeoutMs: 60_000 });
      const seconds = (Date.now() - started) / 1000;
      assert.equal(res.code, 1, res.stderr);
      assert.ok(server.accepted() >= 1, "the download never reached the server");
      assert.match(res.stderr, /stalled: nothing arrived for 2 s \(COMPILE_STALL_SECONDS\)/);
      assert.match(res.stderr, /DENORT_BIN=\/path\/to\/denort/);
      assert.ok(seconds < 30, `the stalled download took ${seconds} s to fail`);
      assert.deepEqual([...Deno.readDirSync(tmp)], [], "temporary files were left behind");
      const cache = join(env.DENO_DIR, "dl", "release", `v${Deno.version.deno}`);
      assert.deepEqual([...Deno.readDirSync(cache)], [], "a partial download was left in the cache");
      assert.ok(!isFile(bin));
    } finally {
      server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "compile: Ctrl-C stops the build at once, leaving no temporary file and no child process",
  ignore: !isFile("/usr/bin/curl"),
  async fn() {
    const server = stallingServer();
    const { dir, tmp, env } = await downloadEnv(server.url, 120);
    const marker = new URL(server.url).port;
    try {
      const child = new Deno.Command("bash", {
        args: [script, "--output", join(dir, "mmxmpp")],
        cwd: root,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const end = Date.now() + 30_000;
      while (server.accepted() === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.ok(server.accepted() >= 1, "the download never started");
      assert.ok(processesWith(`127.0.0.1:${marker}`).length > 0, "no download process was seen");

      const interrupted = Date.now();
      child.kill("SIGINT");
      const out = await child.output();
      const seconds = (Date.now() - interrupted) / 1000;
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 130, stderr);
      assert.ok(seconds < 5, `compile.sh took ${seconds} s to stop after SIGINT`);
      assert.match(stderr, /interrupted; stopping and removing partial files/);
      assert.deepEqual(processesWith(`127.0.0.1:${marker}`), [], "a child process outlived compile.sh");
      assert.deepEqual([...Deno.readDirSync(tmp)], [], "temporary files were left behind");
      const cache = join(env.DENO_DIR, "dl", "release", `v${Deno.version.deno}`);
      assert.deepEqual([...Deno.readDirSync(cache)], [], "a partial download was left in the cache");
    } finally {
      server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
