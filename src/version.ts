/** mmxmpp's version, printed by `--version` and sent as the user agent. */
export const VERSION = "0.1.0";
