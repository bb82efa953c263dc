#!/usr/bin/env bash
# run.sh: start the accounts and payments services in the foreground (make run), with
# their logs interleaved and prefixed by the service name. Ctrl-C stops both; if one of
# them exits, the other is stopped too.
#
# Run from anywhere: it changes to the repository root, where the services' defaults
# (certs/dev/, data/, localhost:50051 and :50052) point. For other settings run the
# binaries yourself (bin/accounts --help, bin/payments --help).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
for b in accounts payments; do
	if [[ ! -x $BIN/$b ]]; then
		echo "run.sh: $BIN/$b not found: run 'make build' first" >&2
		exit 1
	fi
done
if [[ ! -f certs/dev/ca.crt ]]; then
	echo "run.sh: no dev PKI in certs/dev: run 'make certs' first" >&2
	exit 1
fi
mkdir -p data

if [[ -t 1 ]]; then
	colour_accounts=$'\e[36m' colour_payments=$'\e[35m' reset=$'\e[0m'
else
	colour_accounts="" colour_payments="" reset=""
fi

# prefix LABEL: copy stdin to stdout, each line prefixed with LABEL.
prefix() {
	local line
	while IFS= read -r line || [[ -n $line ]]; do
		printf '%s %s\n' "$1" "$line"
	done
}

pids=()
stopping=0
# stop: terminate the services that still run and wait for them to drain.
stop() {
	[[ $stopping == 1 ]] && return
	stopping=1
	local pid
	# ${a[@]+"${a[@]}"}: an empty array under set -u in the bash 3.2 of macOS.
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in ${pids[@]+"${pids[@]}"}; do
		wait "$pid" 2>/dev/null || true
	done
}
trap 'echo; echo "run.sh: stopping both services" >&2; stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# start NAME COLOUR ARGS...: start service NAME in the background with prefixed logs.
start() {
	local name=$1 colour=$2
	shift 2
	"$BIN/$name" "$@" > >(prefix "${colour}[$name]${reset}") 2>&1 &
	pids+=("$!")
}

echo "run.sh: starting accounts (localhost:50051) and payments (localhost:50052); Ctrl-C stops both" >&2
start accounts "$colour_accounts"
start payments "$colour_payments"

# Run until either service exits or Ctrl-C runs the trap. A liveness poll rather than
# `wait -n`, which the bash 3.2 of macOS does not have.
while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null; do
	sleep 0.5
done
echo "run.sh: a service stopped; stopping the other" >&2
rc=0
for pid in "${pids[@]}"; do
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
done
stopping=1
exit "$rc"
