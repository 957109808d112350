/**
 * What the running bridge loads. Every module reachable from main.ts through static imports is loaded (and kept in
 * memory) before the bridge starts; the doctor, the `mappings` subcommand, SRV discovery and the IBR and component
 * ghosts are for some runs only, and are imported when used. The module graph comes from `deno info --json`, the
 * same analysis `deno run` and `deno compile` use.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

interface InfoModule {
  specifier: string;
  dependencies?: Array<{ code?: { specifier: string }; isDynamic?: boolean }>;
}

/** The repository's modules reachable from main.ts: through static imports only, or through dynamic ones too. */
async function reachable(): Promise<{ static: Set<string>; all: Set<string> }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, `deno info failed: ${new TextDecoder().decode(out.stderr)}`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { roots: string[]; modules: InfoModule[] };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const walk = (followDynamic: boolean) => {
    const seen = new Set<string>();
    const stack = [...info.roots];
    while (stack.length > 0) {
      const spec = stack.pop()!;
      if (seen.has(spec) || !spec.startsWith("file:")) continue;
      seen.add(spec);
      for (const dep of bySpecifier.get(spec)?.dependencies ?? []) {
        if (dep.code && (followDynamic || !dep.isDynamic)) stack.push(dep.code.specifier);
      }
    }
    return new Set([...seen].map((s) => fileURLToPath(s).slice(ROOT.length + 1)));
  };
  return { static: walk(false), all: walk(true) };
}

/** Modules the bridge needs only on some runs. */
const ON_DEMAND = [
  "doctor.ts",
  "src/doctor/options.ts",
  "src/doctor/report.ts",
  "src/doctor/tls_probe.ts",
  "src/cli/mappings.ts",
  "src/xmpp/session/srv.ts",
  "src/xmpp/intents/ibr_ghosts.ts",
  "src/core/secretbox.ts",
  "src/xmpp/intents/puppets.ts",
  "src/xmpp/intents/component.ts",
];

Deno.test("the start path does not load the doctor, the mappings CLI, SRV discovery or the ghost modes", async () => {
  const { static: eager, all } = await reachable();
  // The check means something only if the start path is there, and the on-demand modules are still part of the
  // program (deno compile embeds what a literal dynamic import names).
  for (const m of ["main.ts", "src/app.ts", "src/xmpp/connector.ts", "src/mattermost/connector.ts"]) {
    assert.ok(eager.has(m), `${m} is on the start path`);
  }
  for (const m of ON_DEMAND) {
    assert.ok(all.has(m), `${m} is reachable from main.ts through a dynamic import`);
    assert.ok(!eager.has(m), `${m} is loaded at start (a static import chain reaches it from main.ts)`);
  }
  assert.deepEqual([...eager].filter((m) => m.startsWith("src/doctor/")), []);
});
