/**
 * Writes the documentation derived from the settings schema (src/settings.ts): scripts/mmxmpp.env.example and the
 * environment table in README.md. `deno task settings-docs` runs it; tests/unit/settings_docs_test.ts fails when the
 * committed files differ from what it would write.
 *
 * @module
 */
import { documentedVariables, type Section, type Setting, settingList } from "../src/settings.ts";

/** Width of the example file's lines. */
const WIDTH = 116;

const SECTION_TITLES: Record<Section, string> = {
  Mattermost: "Mattermost",
  XMPP: "XMPP",
  Bridge: "Bridge",
  Ghosts: "Mattermost users as themselves on XMPP",
  Logging: "Logging",
};

const HEADER =
  `# mmxmpp configuration for the systemd unit (scripts/mmxmpp.service reads /etc/mmxmpp/mmxmpp.env).
# Install it with:  install -m 0600 scripts/mmxmpp.env.example /etc/mmxmpp/mmxmpp.env
# Generated from src/settings.ts by \`deno task settings-docs\`; edit the schema there, not this file.
#
# Format: KEY=value, one per line; lines starting with # are comments. Quote a value with "..." to keep leading or
# trailing spaces. A variable that is absent or empty takes its default. \`mmxmpp --help\` lists every variable.
# A missing or bad value makes mmxmpp exit with code 2 and a line naming the variable; the unit does not restart then.
#
# SECRETS DO NOT GO HERE. Put each in a root-only file, e.g.
#   install -m 0600 /dev/null /etc/mmxmpp/mm_token && editor /etc/mmxmpp/mm_token
# The unit hands such files to the bridge as systemd credentials and names them in X_FILE (see its LoadCredential=
# lines). Outside systemd, X or X_FILE can be set in the environment. The secrets:`;

/** Splits `text` into comment lines no wider than {@link WIDTH}. */
function comment(text: string): string[] {
  const lines: string[] = [];
  let line = "#";
  for (const word of text.split(" ")) {
    if (line.length + 1 + word.length > WIDTH && line !== "#") {
      lines.push(line);
      line = "#";
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}

/** A value as an environment file line holds it: quoted when it has spaces. */
function quoted(value: string): string {
  return /\s/.test(value) ? `"${value}"` : value;
}

/** `text` ending with a full stop (docs are fragments, kept in their own case: "xmpp://…", "true skips …"). */
function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function entry(s: Setting & { name: string }): string[] {
  const shown = documentedVariables().find((v) => v.name === s.name)!.default;
  const text = [
    sentence(s.doc),
    s.notes ?? "",
    s.required ? "Required." : `Default: ${/\s$/.test(shown) ? `"${shown}"` : shown}.`,
  ].filter((t) => t !== "").join(" ");
  if (s.required) return [...comment(text), `${s.name}=`, `# e.g. ${s.name}=${quoted(s.example ?? "")}`];
  return [...comment(text), `#${s.name}=${quoted(s.example ?? s.default ?? "")}`];
}

/** The example environment file: every setting that is not a secret, and the list of secrets. */
export function envExample(): string {
  const settings = settingList();
  const secrets = settings.filter((s) => s.secret);
  const width = Math.max(...secrets.map((s) => s.name.length));
  const out = [
    HEADER,
    ...secrets.map((s) => `#   ${s.name.padEnd(width)}  ${s.doc}${s.required ? " (required)" : ""}`),
  ];
  let section: Section | undefined;
  for (const s of settings.filter((s) => !s.secret)) {
    if (s.section !== section) {
      section = s.section;
      const title = `# ---- ${SECTION_TITLES[section]} `;
      out.push("", title.padEnd(WIDTH, "-"));
    }
    out.push("", ...entry(s));
  }
  return out.join("\n") + "\n";
}

/** The README's environment table, as deno fmt lays it out. */
export function readmeTable(): string {
  const rows = [
    ["variable", "meaning", "default"],
    ...documentedVariables().map((v) => [`\`${v.name}\``, v.doc, v.default.trim()]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(rows[0]), line(widths.map((w) => "-".repeat(w))), ...rows.slice(1).map(line)].join("\n");
}

/** The README's table rows as cells (name, meaning, default), from its "## Configuration" section. */
export function readmeTableRows(readme: string): string[][] {
  const section = readme.slice(readme.indexOf("## Configuration"));
  const lines = section.split("\n");
  const start = lines.findIndex((l) => l.startsWith("| variable"));
  const rows: string[][] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith("|")) break;
    rows.push(l.slice(1, -1).split("|").map((c) => c.trim()));
  }
  return rows;
}

/** `readme` with its environment table replaced by {@link readmeTable}. */
export function withReadmeTable(readme: string): string {
  const at = readme.indexOf("| variable", readme.indexOf("## Configuration"));
  let end = readme.indexOf("\n\n", at);
  if (end < 0) end = readme.length;
  return readme.slice(0, at) + readmeTable() + readme.slice(end);
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url);
  Deno.writeTextFileSync(new URL("scripts/mmxmpp.env.example", root), envExample());
  const readme = new URL("README.md", root);
  Deno.writeTextFileSync(readme, withReadmeTable(Deno.readTextFileSync(readme)));
}
