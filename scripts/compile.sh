#!/usr/bin/env bash
# Compile mmxmpp (main.ts, which imports doctor.ts) into one self-contained executable with `deno compile`.
#
# Usage: scripts/compile.sh [TARGET] [-o|--output PATH]
#   TARGET   a `deno compile --target`, e.g. x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu,
#            x86_64-apple-darwin, aarch64-apple-darwin (also read from the TARGET variable)
#   PATH     where to write the binary (also read from OUTPUT); default dist/mmxmpp, or dist/mmxmpp-TARGET
#
# Environment:
#   DENORT_BIN        path to an unpacked `denort` binary of this Deno version (and of TARGET). Without it,
#                     `deno compile` uses the copy cached in Deno's directory, or downloads it from dl.deno.land.
#   COMPILE_TIMEOUT   seconds before a hanging compile is stopped (default 900)
#   COMPILE_STALL_SECONDS  a denort download that receives nothing for this long fails (default 30)
#   DENORT_DOWNLOAD_BASE   where denort archives are downloaded from (default https://dl.deno.land/release)
#
# The binary is checked before the script succeeds: it must answer `--version` with "mmxmpp ..." (skipped, with a
# note, when cross-compiling for another target). Ctrl-C stops every child and removes partial files.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=${TARGET:-}
output=${OUTPUT:-}

usage() {
	local code=${1:-2}
	if [[ $code -eq 0 ]]; then
		sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	else
		sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	fi
	exit "$code"
}

while [[ $# -gt 0 ]]; do
	case $1 in
	-h | --help) usage 0 ;;
	-o | --output)
		[[ $# -ge 2 ]] || usage
		output=$2
		shift 2
		;;
	--output=*)
		output=${1#--output=}
		shift
		;;
	--target)
		[[ $# -ge 2 ]] || usage
		target=$2
		shift 2
		;;
	--target=*)
		target=${1#--target=}
		shift
		;;
	-*)
		echo "compile.sh: unknown option $1" >&2
		usage
		;;
	*)
		target=$1
		shift
		;;
	esac
done

if [[ -z $output ]]; then
	output="$root/dist/mmxmpp${target:+-$target}"
fi
mkdir -p "$(dirname "$output")"

deno_version=$(deno eval --no-config 'console.log(Deno.version.deno)')
host_target=$(deno eval --no-config 'console.log(Deno.build.target)')
effective_target=${target:-$host_target}

if [[ -n ${DENORT_BIN:-} ]]; then
	if [[ ! -f $DENORT_BIN ]]; then
		echo "compile.sh: DENORT_BIN=$DENORT_BIN does not exist or is not a file." >&2
		echo "  Point it at an unpacked denort ${deno_version} for ${effective_target}," >&2
		echo "  e.g. the 'denort' inside denort-${effective_target}.zip of the Deno v${deno_version} release." >&2
		exit 1
	fi
	echo "compile.sh: using DENORT_BIN=$DENORT_BIN (it must be denort ${deno_version} for ${effective_target})" >&2
fi

# The V8 flags of deno.json's `start` task (a small young generation, for a small idle footprint: README,
# "Performance"). deno compile embeds them, so the binary runs with them as `deno task start` does; DENO_V8_FLAGS
# set when the binary runs comes on top.
v8_flags=$(deno eval --no-config '
	const start = JSON.parse(Deno.readTextFileSync(Deno.args[0])).tasks.start;
	console.log(start.match(/--v8-flags=(\S+)/)?.[1] ?? "");
' "$root/deno.json")

args=(
	compile
	--frozen
	# What the bridge needs at run time: sockets (XMPP, Mattermost, its HTTP listener), its env, the _FILE secrets
	# and CA file, the KV file, and os facts (hostname) used by dependencies.
	--allow-net --allow-env --allow-read --allow-write --allow-sys
	--unstable-kv
	--output "$output"
)
if [[ -n $v8_flags ]]; then
	args+=("--v8-flags=$v8_flags")
fi
if [[ -n $target ]]; then
	args+=(--target "$target")
fi
# emoji-datasource (emoji names for reactions) ships 24 MB of sprite sheets the bridge never reads: leave them out
# of the binary. deno compile embeds npm packages from Deno's npm cache, where they are found by version.
npm_cache=$(cd "$root" && deno info --json 2>/dev/null | sed -n 's/.*"npmCache": *"\([^"]*\)".*/\1/p')
for img in "$npm_cache"/registry.npmjs.org/emoji-datasource/*/img; do
	[[ -d $img ]] && args+=(--exclude "$img")
done
# main.ts loads doctor.ts with a dynamic import (for --doctor); name it so it is embedded whatever the analysis finds.
args+=(--include "$root/doctor.ts" "$root/main.ts")

explain_denort() {
	cat >&2 <<EOF

compile.sh: 'deno compile' could not get its base binary, denort, so no executable was written.
  deno compile builds the executable from 'denort' (the Deno runtime without the CLI tools). When denort is not
  cached in ${cache_dir}/ it is downloaded from
    ${download_url}
  and that download failed (no internet access, or the host is not reachable; HTTPS_PROXY is honoured).
  Provide denort yourself, then run this again:
    1. on a machine with internet, fetch denort-${effective_target}.zip of the Deno v${deno_version} release
       (the URL above, or https://github.com/denoland/deno/releases/tag/v${deno_version});
    2. unzip it and run:  DENORT_BIN=/path/to/denort bash scripts/compile.sh${target:+ $target}
       (or copy the zip unchanged to ${cache_dir}/denort-${effective_target}.zip).
  denort must be the same version as this deno (${deno_version}) and built for ${effective_target}.
EOF
}

deno_dir=$(deno info --json 2>/dev/null | sed -n 's/^ *"denoDir": *"\(.*\)",\{0,1\}$/\1/p' | head -n1)
cache_dir="${deno_dir:-${DENO_DIR:-$HOME/.cache/deno}}/dl/release/v${deno_version}"
cached_zip="$cache_dir/denort-${effective_target}.zip"
download_url="${DENORT_DOWNLOAD_BASE:-https://dl.deno.land/release}/v${deno_version}/denort-${effective_target}.zip"
stall_seconds=${COMPILE_STALL_SECONDS:-30}

# Everything this run creates, so that a failure or Ctrl-C leaves nothing behind.
errlog=$(mktemp)
partial=""
child=""
finished=0
compiling=0
cleanup() {
	rm -f "$errlog"
	[[ -z $partial ]] || rm -f "$partial"
	if [[ $compiling -eq 1 && $finished -ne 1 ]]; then rm -f "$output"; fi
}
on_signal() {
	trap - INT TERM
	echo "compile.sh: interrupted; stopping and removing partial files" >&2
	if [[ -n $child ]]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	cleanup
	exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# Runs a command in the background and waits for it, so that a signal reaches the trap at once (bash runs traps
# only between commands, and `wait` is interruptible where a foreground command is not). Sets $status.
run_child() {
	"$@" &
	child=$!
	set +e
	wait "$child"
	status=$?
	set -e
	child=""
}

# Downloads denort into Deno's cache with stall detection: deno compile's own download has no timeout of its own,
# so a stalled connection would hang until COMPILE_TIMEOUT.
fetch_denort() {
	if [[ -n ${DENORT_BIN:-} || -f $cached_zip ]] || ! command -v curl >/dev/null 2>&1; then
		return 0
	fi
	mkdir -p "$cache_dir"
	partial=$(mktemp "$cache_dir/.denort-download.XXXXXX")
	echo "compile.sh: downloading ${download_url} (fails if nothing arrives for ${stall_seconds} s)" >&2
	run_child curl --fail --location --silent --show-error --connect-timeout 15 \
		--speed-limit 1 --speed-time "$stall_seconds" --output "$partial" "$download_url"
	if [[ $status -ne 0 ]]; then
		if [[ $status -eq 28 ]]; then
			echo "compile.sh: the denort download stalled: nothing arrived for ${stall_seconds} s (COMPILE_STALL_SECONDS)." >&2
		else
			echo "compile.sh: the denort download failed (curl exit code $status)." >&2
		fi
		explain_denort
		exit 1
	fi
	mv "$partial" "$cached_zip"
	partial=""
}

# The written binary must be mmxmpp: a DENORT_BIN that is not denort (the deno CLI, another program) still
# "compiles", into something that ignores the embedded program.
verify_binary() {
	if [[ $effective_target != "$host_target" ]]; then
		echo "compile.sh: not running the ${effective_target} binary on ${host_target}; its --version is unchecked" >&2
		return 0
	fi
	local said
	said=$(timeout 30 "$output" --version 2>&1 </dev/null) || true
	if [[ $said != "mmxmpp "* ]]; then
		echo "compile.sh: the written binary is not mmxmpp: \`$output --version\` printed:" >&2
		printf '%s\n' "${said:-(nothing)}" | head -n 3 | sed 's/^/    /' >&2
		if [[ -n ${DENORT_BIN:-} ]]; then
			echo "  DENORT_BIN=$DENORT_BIN is not denort ${deno_version} for ${effective_target}." >&2
		fi
		echo "  The binary was removed." >&2
		exit 1
	fi
	echo "compile.sh: $output --version: $said" >&2
}

cd "$root"
fetch_denort
echo "compile.sh: deno ${args[*]}" >&2
# stderr goes to the terminal and to a file, so that a failure can be explained.
compiling=1
run_child timeout --kill-after=10 "${COMPILE_TIMEOUT:-900}" deno "${args[@]}" 2> >(tee "$errlog" >&2)

if [[ $status -eq 0 ]]; then
	verify_binary
	finished=1
	echo "compile.sh: wrote $output" >&2
	exit 0
fi
if [[ $status -eq 124 || $status -eq 137 ]]; then
	echo "compile.sh: deno compile did not finish within ${COMPILE_TIMEOUT:-900} s and was stopped." >&2
	if [[ -z ${DENORT_BIN:-} ]]; then
		explain_denort
	fi
	exit 1
fi
if [[ -z ${DENORT_BIN:-} ]] && grep -q -e 'dl\.deno\.land' -e 'Setting up base binary' -e 'denort' "$errlog"; then
	explain_denort
fi
exit "$status"
