/**
 * Mattermost emoji names ↔ Unicode emoji, from `emoji-datasource`: the dataset Mattermost builds its own system
 * emoji from, so its short names (`+1`, `thumbsup`, `smile`, …) are Mattermost's. Skin-tone variants get
 * Mattermost's names for them (`+1_dark_skin_tone`).
 *
 * The dataset (1.3 MB of JSON) is read once, on first use ({@link loadEmoji}), into two small maps; the parsed
 * JSON is not kept.
 *
 * Names the dataset does not know are custom emoji of the server: they travel as `:name:`, which no Unicode emoji
 * is, and come back as `name`. A Unicode emoji with skin tones Mattermost has no name for is named without them;
 * any other Unicode emoji (or text) Mattermost has no name for cannot be a Mattermost reaction: {@link nameOfEmoji}
 * answers undefined and the caller leaves it out (see the README's Reactions section).
 *
 * @module
 */
import { createRequire } from "node:module";

/** One entry of `emoji-datasource/emoji.json`, the fields read here. */
interface DatasetEntry {
  unified: string;
  non_qualified?: string | null;
  short_names: string[];
  skin_variations?: Record<string, { unified: string; non_qualified?: string | null }>;
}

/** Mattermost's words for the five Fitzpatrick modifiers, as in `+1_medium_dark_skin_tone`. */
const SKIN_TONES: Record<string, string> = {
  "1F3FB": "light_skin_tone",
  "1F3FC": "medium_light_skin_tone",
  "1F3FD": "medium_skin_tone",
  "1F3FE": "medium_dark_skin_tone",
  "1F3FF": "dark_skin_tone",
};

interface Tables {
  /** Mattermost name → the fully qualified emoji. */
  byName: Map<string, string>;
  /** Emoji without variation selectors → its first Mattermost name. */
  byEmoji: Map<string, string>;
}

/** The maps, once read; `loading` while they are being read (cleared again when that fails, to be retried). */
let loaded: Tables | undefined;
let loading: Promise<void> | undefined;

/** `1F44D-1F3FB` → `👍🏻`. */
function fromCodepoints(unified: string): string {
  return String.fromCodePoint(...unified.split("-").map((hex) => parseInt(hex, 16)));
}

/** The key an emoji is found by: without VS15/VS16, which clients add or drop at will. */
function emojiKey(emoji: string): string {
  return emoji.replace(/[\uFE0E\uFE0F]/g, "");
}

/**
 * Reads the dataset into the two maps, once. Call (and await) before {@link emojiOfName} or {@link nameOfEmoji}.
 */
export function loadEmoji(): Promise<void> {
  if (loaded) return Promise.resolve();
  loading ??= build().then((t) => void (loaded = t), (err) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

async function build(): Promise<Tables> {
  // A literal import puts the package in the module graph, so that `deno cache`, a first run on a fresh machine
  // and `deno compile` all have it; the dataset itself is read as a file, not imported: a JSON module stays in the
  // module map for the life of the process, and this way the parsed JSON is garbage once the maps are built.
  await import("emoji-datasource/package.json", { with: { type: "json" } });
  const path = createRequire(import.meta.url).resolve("emoji-datasource/emoji.json");
  const entries = JSON.parse(await Deno.readTextFile(path)) as DatasetEntry[];
  const byName = new Map<string, string>();
  const byEmoji = new Map<string, string>();
  const add = (names: string[], unified: string, nonQualified?: string | null) => {
    const emoji = fromCodepoints(unified);
    for (const name of names) if (!byName.has(name)) byName.set(name, emoji);
    for (const form of [unified, nonQualified]) {
      if (!form) continue;
      const key = emojiKey(fromCodepoints(form));
      if (!byEmoji.has(key)) byEmoji.set(key, names[0]);
    }
  };
  for (const entry of entries) {
    add(entry.short_names, entry.unified, entry.non_qualified);
    for (const [tone, variation] of Object.entries(entry.skin_variations ?? {})) {
      // Only single-tone variants have a Mattermost name; two-person ones (`1F3FB-1F3FC`) have none.
      const word = SKIN_TONES[tone];
      if (!word) continue;
      add(entry.short_names.map((n) => `${n}_${word}`), variation.unified, variation.non_qualified);
    }
  }
  return { byName, byEmoji };
}

function ready(): Tables {
  if (!loaded) throw new Error("the emoji dataset is not loaded: await loadEmoji() first");
  return loaded;
}

/**
 * The Unicode emoji a Mattermost reaction name stands for; a name the dataset does not know (a custom emoji) as
 * `:name:`.
 *
 * @example
 * ```ts
 * await loadEmoji();
 * emojiOfName("+1"); // "👍"
 * emojiOfName("party_parrot"); // ":party_parrot:"
 * ```
 */
export function emojiOfName(name: string): string {
  return ready().byName.get(name) ?? `:${name}:`;
}

/**
 * The Mattermost reaction name of an emoji (or of a `:name:` made by {@link emojiOfName}), or undefined when
 * Mattermost has none: such a reaction cannot be shown there.
 *
 * @example
 * ```ts
 * nameOfEmoji("👍"); // "+1"
 * nameOfEmoji(":party_parrot:"); // "party_parrot"
 * nameOfEmoji("hello"); // undefined
 * ```
 */
export function nameOfEmoji(emoji: string): string | undefined {
  const custom = /^:([a-zA-Z0-9_+-]{1,64}):$/.exec(emoji);
  if (custom) return custom[1];
  const { byEmoji } = ready();
  const key = emojiKey(emoji);
  // Skin tones Mattermost has no name for (two people of different tones): the same emoji without them is closer
  // than nothing.
  return byEmoji.get(key) ?? byEmoji.get(key.replace(/[\u{1F3FB}-\u{1F3FF}]/gu, ""));
}
