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
#   COMPILE_TIMEOUT   seconds before a hanging compile (e.g. a stalled download) is stopped (default 900)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=${TARGET:-}
output=${OUTPUT:-}

usage() {
	local code=${1:-2}
	if [[ $code -eq 0 ]]; then
		sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	else
		sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
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

args=(
	compile
	--frozen
	# What the bridge needs at run time: sockets (XMPP, Mattermost, its HTTP listener), its env, the _FILE secrets
	# and CA file, the KV file, and os facts (hostname) used by dependencies.
	--allow-net --allow-env --allow-read --allow-write --allow-sys
	--unstable-kv
	--output "$output"
)
if [[ -n $target ]]; then
	args+=(--target "$target")
fi
# main.ts loads doctor.ts with a dynamic import (for --doctor); name it so it is embedded whatever the analysis finds.
args+=(--include "$root/doctor.ts" "$root/main.ts")

explain_denort() {
	local deno_dir cache_dir
	deno_dir=$(deno info --json 2>/dev/null | sed -n 's/^ *"denoDir": *"\(.*\)",\{0,1\}$/\1/p' | head -n1)
	cache_dir="${deno_dir:-\$DENO_DIR}/dl/release/v${deno_version}"
	cat >&2 <<EOF

compile.sh: 'deno compile' could not get its base binary, denort, so no executable was written.
  deno compile builds the executable from 'denort' (the Deno runtime without the CLI tools). When denort is not
  cached in ${cache_dir}/ it downloads
    https://dl.deno.land/release/v${deno_version}/denort-${effective_target}.zip
  and that download failed (no internet access, or dl.deno.land is not reachable; HTTPS_PROXY is honoured).
  Provide denort yourself, then run this again:
    1. on a machine with internet, fetch denort-${effective_target}.zip of the Deno v${deno_version} release
       (the URL above, or https://github.com/denoland/deno/releases/tag/v${deno_version});
    2. unzip it and run:  DENORT_BIN=/path/to/denort bash scripts/compile.sh${target:+ $target}
       (or copy the zip unchanged to ${cache_dir}/denort-${effective_target}.zip).
  denort must be the same version as this deno (${deno_version}) and built for ${effective_target}.
EOF
}

cd "$root"
errlog=$(mktemp)
trap 'rm -f "$errlog"' EXIT
echo "compile.sh: deno ${args[*]}" >&2
set +e
# stderr goes to the terminal and to a file, so a failure can be explained; stdout stays stdout (fd 3).
{ timeout --kill-after=10 "${COMPILE_TIMEOUT:-900}" deno "${args[@]}" 2>&1 1>&3 3>&- | tee "$errlog" >&2; } 3>&1
status=${PIPESTATUS[0]}
set -e

if [[ $status -eq 0 ]]; then
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
