import assert from "node:assert/strict";
import { envExample, readmeTable, readmeTableRows } from "../../scripts/settings_docs.ts";
import { documentedVariables, secretNames, settingList } from "../../src/settings.ts";
import { helpText } from "../../src/config.ts";

const root = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, root));

Deno.test("scripts/mmxmpp.env.example is what the schema generates (run deno task settings-docs)", () => {
  assert.equal(read("scripts/mmxmpp.env.example"), envExample());
});

Deno.test("the example file sets every variable except the secrets, which it only names", () => {
  const example = read("scripts/mmxmpp.env.example");
  for (const s of settingList()) {
    const assignment = new RegExp(`^#?${s.name}=`, "m");
    if (s.secret) {
      assert.doesNotMatch(example, assignment, `${s.name} is a secret and must not be assigned in the file`);
      assert.match(example, new RegExp(`^#   ${s.name} `, "m"), `${s.name} is listed among the secrets`);
    } else {
      assert.match(example, assignment, `${s.name} is missing from the example`);
    }
  }
});

Deno.test("README's environment table lists exactly the schema's variables, with their docs and defaults", () => {
  const readme = read("README.md");
  const rows = readmeTableRows(readme);
  assert.deepEqual(
    rows,
    documentedVariables().map((v) => [`\`${v.name}\``, v.doc, v.default.trim()]),
  );
  // And as deno fmt lays it out, so that `deno task settings-docs` and `deno fmt` agree.
  assert.ok(readme.includes(readmeTable()), "README's table differs in layout: run deno task settings-docs");
});

Deno.test("--help lists every variable of the schema and the _FILE form of each secret", () => {
  const help = helpText("0.0.0");
  for (const v of documentedVariables()) assert.match(help, new RegExp(`^  ${v.name} +\\S`, "m"), v.name);
  for (const name of secretNames()) assert.match(help, new RegExp(`^  ${name}_FILE `, "m"));
});
