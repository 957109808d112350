/**
 * `deno task try` (scripts/try.ts), as a new user runs it: the playground starts, prints the environment file, the
 * bridge started from that file (its own process, as `deno task start` would) bridges both ways, and the
 * playground stops cleanly on `quit`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { waitFor } from "../helpers/harness.ts";

const root = new URL("../..", import.meta.url).pathname;

/** Reads a child's stdout into a growing string. */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = stream.pipeTo(
    new WritableStream({ write: (chunk) => void (text += decoder.decode(chunk, { stream: true })) }),
  );
  return { text: () => text, done };
}

Deno.test("try: the playground's printed environment runs a bridge that carries messages both ways", async () => {
  const playground = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "try"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = collect(playground.stdout);
  const err = collect(playground.stderr);
  const input = playground.stdin.getWriter();
  const type = (line: string) => input.write(new TextEncoder().encode(line + "\n"));
  let bridge: Deno.ChildProcess | undefined;
  try {
    await waitFor(
      () => /set -a; \. (\S+); set \+a; deno task start/.test(out.text()),
      "the playground",
      60_000,
    )
      .catch((e) => {
        throw new Error(`${e.message}\nstdout:\n${out.text()}\nstderr:\n${err.text()}`);
      });
    const envFile = /set -a; \. (\S+);/.exec(out.text())![1];
    assert.match(out.text(), /STAND-IN for development, not a real Mattermost/);
    const env = Object.fromEntries(
      (await Deno.readTextFile(envFile)).trim().split("\n").map((
        l,
      ) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    for (
      const name of ["MM_URL", "MM_TOKEN", "XMPP_JID", "XMPP_SERVICE", "XMPP_CA_FILE", "BRIDGE_MAPPINGS"]
    ) {
      assert.ok(env[name], `the environment file lacks ${name}`);
    }

    bridge = new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "start"],
      cwd: root,
      env: { ...env, NO_COLOR: "1", BRIDGE_HTTP_ADDR: "127.0.0.1:0", LOG_FORMAT: "json" },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();

    // The bridge joins the room on its own time: keep saying hello until the other side shows it.
    let n = 0;
    await waitFor(
      async () => {
        await type(`xmpp hello from alice ${++n}`);
        await new Promise((r) => setTimeout(r, 300));
        return /\[mattermost\] alice \(xmpp\): hello from alice \d+/.test(out.text());
      },
      "alice's message on the Mattermost side",
      60_000,
    ).catch((e) => {
      throw new Error(`${e.message}\n${out.text()}`);
    });
    await type("mm hi from bob");
    await waitFor(
      () => out.text().includes("[xmpp] bridge: <bob> hi from bob"),
      "bob's post in the room",
      15_000,
    )
      .catch((e) => {
        throw new Error(`${e.message}\n${out.text()}`);
      });

    await type("quit");
    await input.close();
    const status = await playground.status;
    assert.equal(status.code, 0, err.text());
    assert.match(out.text(), /stopping Prosody and the stand-in/);
  } finally {
    if (bridge) {
      bridge.kill("SIGTERM");
      await bridge.status;
    }
    try {
      playground.kill("SIGTERM");
    } catch { /* already exited */ }
    await playground.status;
    await Promise.allSettled([out.done, err.done]);
  }
});

Deno.test("prosody-setup.sh answers --help and prints the next steps with the ports and files it wrote", async () => {
  const script = `${root}scripts/prosody-setup.sh`;
  const run = async (args: string[]) => {
    const out = await new Deno.Command("bash", { args: [script, ...args], stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  const help = await run(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: .*prosody-setup\.sh DIR \[C2S_PORT\]/m);
  assert.doesNotMatch(help.stdout, /set -euo pipefail/);

  const bare = await run([]);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /--help for more/);

  const dir = await Deno.makeTempDir({ prefix: "mmxmpp-setup-" });
  try {
    const res = await run([dir, "25222", "25347", "25280"]);
    assert.equal(res.code, 0, res.stderr);
    assert.ok(res.stdout.includes(`prosody --config ${dir}/prosody.cfg.lua -F`), res.stdout);
    assert.ok(res.stdout.includes(`prosodyctl --config ${dir}/prosody.cfg.lua register bridge localhost`));
    assert.ok(res.stdout.includes("XMPP_SERVICE=xmpp://127.0.0.1:25222"));
    assert.ok(res.stdout.includes(`XMPP_CA_FILE=${dir}/localhost.crt`));
    assert.ok(res.stdout.includes("XMPP_COMPONENT_SERVICE=xmpp://127.0.0.1:25347"));
    if (Deno.uid() === 0) assert.match(res.stdout, /runuser -u prosody -- prosody --config/);
    const config = await Deno.readTextFile(`${dir}/prosody.cfg.lua`);
    assert.match(config, /c2s_ports = \{ 25222 \}/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
