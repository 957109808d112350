#!/usr/bin/env bash
# Write a throwaway Prosody 0.12 configuration and a self-signed certificate into DIR.
#
# Usage: scripts/prosody-setup.sh DIR [C2S_PORT] [COMPONENT_PORT] [HTTP_PORT]
#
# Everything listens on 127.0.0.1 only. The result serves:
#   localhost              accounts (in-band registration allowed, plain auth allowed without TLS, STARTTLS offered,
#                          PEP with XEP-0084 avatars served as vCards and XEP-0153 hashes by mod_vcard_legacy)
#   conference.localhost   MUC, anyone may create rooms, every groupchat message gets a XEP-0359 stanza-id
#   upload.localhost       XEP-0363 HTTP file upload at http://127.0.0.1:HTTP_PORT/
#   bridge.localhost       XEP-0114 component (mmxmpp) on COMPONENT_PORT
#   example.test           a second account host, for clients that find the server by DNS SRV (RFC 6761's
#                          .test names reach a resolver; *.localhost names never do)
#
# Run it:   runuser -u prosody -- prosody --config DIR/prosody.cfg.lua -F
# Accounts: runuser -u prosody -- prosodyctl --config DIR/prosody.cfg.lua register alice localhost secret
#
# Environment (all optional):
#   PROSODY_C2S_PORT, PROSODY_COMPONENT_PORT, PROSODY_HTTP_PORT   defaults for the ports (5222, 5347, 5280)
#   PROSODY_COMPONENT_SECRET       secret of bridge.localhost (default "component-secret")
#   PROSODY_LOG_LEVEL              debug | info | warn | error (default info)
#   PROSODY_ALLOW_REGISTRATION     true | false: XEP-0077 in-band registration (default true)
#   PROSODY_REGISTRATION_THROTTLE  seconds between two registrations from one IP, 0 = unlimited (default 0)
set -euo pipefail

usage() {
	echo "usage: $0 DIR [C2S_PORT] [COMPONENT_PORT] [HTTP_PORT]   ($0 --help for more)" >&2
	exit 2
}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
	exit 0
fi
[[ $# -ge 1 && $# -le 4 ]] || usage
dir=$1
c2s_port=${2:-${PROSODY_C2S_PORT:-5222}}
component_port=${3:-${PROSODY_COMPONENT_PORT:-5347}}
http_port=${4:-${PROSODY_HTTP_PORT:-5280}}
component_secret=${PROSODY_COMPONENT_SECRET:-component-secret}
log_level=${PROSODY_LOG_LEVEL:-info}
allow_registration=${PROSODY_ALLOW_REGISTRATION:-true}
registration_throttle=${PROSODY_REGISTRATION_THROTTLE:-0}

fail() {
	echo "$0: $*" >&2
	exit 1
}

for port in "$c2s_port" "$component_port" "$http_port"; do
	[[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]] || fail "not a TCP port: $port"
done
[[ $registration_throttle =~ ^[0-9]+$ ]] || fail "PROSODY_REGISTRATION_THROTTLE must be a whole number of seconds"
[[ $allow_registration == true || $allow_registration == false ]] || fail "PROSODY_ALLOW_REGISTRATION must be true or false"
case $log_level in debug | info | warn | error) ;; *) fail "PROSODY_LOG_LEVEL must be debug, info, warn or error" ;; esac
command -v openssl >/dev/null || fail "openssl is required"

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)

# Quote a value as a Lua string literal.
lua_string() {
	local s=$1
	[[ $s != *$'\n'* && $s != *$'\r'* ]] || fail "line breaks are not allowed in: $s"
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

# A self-signed end-entity certificate; clients trust it by taking localhost.crt itself as their CA. CA:FALSE
# matters: Deno.startTls/connectTls (rustls) reject a server certificate marked CA:TRUE, openssl's default for
# -x509, with "CaUsedAsEndEntity" (node:tls in Deno accepts both).
if [[ ! -s $dir/localhost.crt || ! -s $dir/localhost.key ]]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
		-keyout "$dir/localhost.key" -out "$dir/localhost.crt" \
		-subj /CN=localhost \
		-addext subjectAltName=DNS:localhost,DNS:conference.localhost,DNS:upload.localhost,DNS:example.test,IP:127.0.0.1 \
		-addext basicConstraints=critical,CA:FALSE \
		-addext keyUsage=critical,digitalSignature,keyEncipherment \
		-addext extendedKeyUsage=serverAuth \
		2>/dev/null || fail "openssl could not create the certificate"
fi

# Prosody's mod_register_limits exempts 127.0.0.1 by default (registration_allowlist), so a throttle on loopback
# needs an empty allowlist. A throttle of 0 must leave min_seconds_between_registrations unset: 0 makes the
# throttle rate 1/0 and, once two registrations land in the same clock tick, a NaN balance that refuses forever.
if [[ $registration_throttle -gt 0 ]]; then
	registration_limits="min_seconds_between_registrations = $registration_throttle
registration_allowlist = {}"
else
	registration_limits="-- no registration throttle (min_seconds_between_registrations unset)"
fi

cat >"$dir/prosody.cfg.lua" <<EOF
-- Throwaway Prosody configuration written by mmxmpp's scripts/prosody-setup.sh. Loopback only; do not expose.

pidfile = $(lua_string "$dir/prosody.pid")
data_path = $(lua_string "$dir/data")
log = { $log_level = $(lua_string "$dir/prosody.log") }
certificates = $(lua_string "$dir")

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $c2s_port }
component_interfaces = { "127.0.0.1" }
component_ports = { $component_port }
http_interfaces = { "127.0.0.1" }
http_ports = { $http_port }
https_ports = {}
s2s_ports = {}
-- Global option: upload URLs use 127.0.0.1 (the *.localhost names may not resolve), so requests whose Host header
-- matches no virtual host must reach the upload component.
http_default_host = "upload.localhost"
c2s_direct_tls_ports = {}
s2s_direct_tls_ports = {}
-- Prosody leaves Nagle's algorithm on; with the peer's delayed ACK, a stanza written right after one was received
-- waits ~40 ms. A bridge both sends and receives in the same rooms, so it hits this often (see bench/README.md).
network_settings = { nagle = false }

-- Tests connect over plain TCP because xmpp.js cannot be given a CA for STARTTLS; STARTTLS stays offered.
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true

authentication = "internal_hashed"
-- SCRAM's minimum recommended count (default 10000): xmpp.js computes SCRAM with one WebCrypto call per round, so
-- this cuts each login from ~0.4 s to ~0.2 s. Applies to accounts created with this setting.
default_iteration_count = 4096
storage = "internal"

allow_registration = $allow_registration
$registration_limits

-- Runs in the foreground (prosody -F); mod_posix is loaded automatically on POSIX systems.
modules_enabled = {
	"roster";
	"saslauth";
	"tls";
	"disco";
	"register";
	"smacks";
	"mam";
	"pep";
	"vcard_legacy";
	"ping";
	"time";
	"version";
}

VirtualHost "localhost"
	ssl = {
		certificate = $(lua_string "$dir/localhost.crt");
		key = $(lua_string "$dir/localhost.key");
	}

VirtualHost "example.test"
	ssl = {
		certificate = $(lua_string "$dir/localhost.crt");
		key = $(lua_string "$dir/localhost.key");
	}

Component "conference.localhost" "muc"
	modules_enabled = { "muc_mam" }
	muc_room_locking = false
	restrict_room_creation = false
	muc_room_default_public = true
	muc_room_default_persistent = false

Component "upload.localhost" "http_file_share"
	http_external_url = "http://127.0.0.1:$http_port/"

Component "bridge.localhost"
	component_secret = $(lua_string "$component_secret")
EOF

if [[ $(id -u) -eq 0 ]] && id prosody >/dev/null 2>&1; then
	chown -R prosody:prosody "$dir"
fi
chmod 600 "$dir/localhost.key"

if [[ $(id -u) -eq 0 ]]; then run_as="runuser -u prosody -- "; else run_as=""; fi
cat <<EOF
Wrote $dir/prosody.cfg.lua (loopback only; a throwaway server for trying mmxmpp out).

Next steps:
  1. Start Prosody in the foreground (it refuses to run as root, hence runuser):
       ${run_as}prosody --config $dir/prosody.cfg.lua -F
  2. In another terminal, create the bridge's account and one for yourself:
       ${run_as}prosodyctl --config $dir/prosody.cfg.lua register bridge localhost 'BRIDGE-PASSWORD'
       ${run_as}prosodyctl --config $dir/prosody.cfg.lua register alice localhost 'YOUR-PASSWORD'
  3. Give the bridge these settings (plus MM_URL, MM_TOKEN and a mapping to a room on conference.localhost):
       XMPP_JID=bridge@localhost
       XMPP_PASSWORD='BRIDGE-PASSWORD'
       XMPP_SERVICE=xmpp://127.0.0.1:$c2s_port
       XMPP_CA_FILE=$dir/localhost.crt
       BRIDGE_MAPPINGS=team/channel=hall@conference.localhost
     For BRIDGE_GHOST_MODE=component also:
       XMPP_COMPONENT_JID=bridge.localhost
       XMPP_COMPONENT_SERVICE=xmpp://127.0.0.1:$component_port
       XMPP_COMPONENT_SECRET='$component_secret'
  4. Log in with any XMPP client as alice@localhost at 127.0.0.1:$c2s_port (trust $dir/localhost.crt).
EOF
