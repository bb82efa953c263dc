#!/usr/bin/env bash
# run.sh: start the accounts and payments services in the foreground (make run), with
# their logs interleaved and prefixed by the service name. Ctrl-C stops both; if one of
# them exits, the other is stopped too.
#
# While they run, `certgen crl` runs every CRL_REFRESH_INTERVAL seconds (default 60) in
# the background, so the CRLs in certs/dev/crl.pem are re-signed before their nextUpdate
# (the services reload the file and would otherwise fail closed on a stale CRL). It
# prints a line only when it re-signed; the loop stops with the services.
#
# Run from anywhere: it changes to the repository root, where the services' defaults
# (certs/dev/, data/, localhost:50051 and :50052) point. For other settings run the
# binaries yourself (bin/accounts --help, bin/payments --help).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
CERTS_DIR=${CERTS_DIR:-certs/dev}
CRL_REFRESH_INTERVAL=${CRL_REFRESH_INTERVAL:-60}
if [[ ! $CRL_REFRESH_INTERVAL =~ ^[1-9][0-9]*$ ]]; then
	echo "run.sh: CRL_REFRESH_INTERVAL must be a positive number of seconds, not '$CRL_REFRESH_INTERVAL'" >&2
	exit 1
fi
for b in accounts payments certgen; do
	if [[ ! -x $BIN/$b ]]; then
		echo "run.sh: $BIN/$b not found: run 'make build' first" >&2
		exit 1
	fi
done
if [[ ! -f $CERTS_DIR/ca.crt || ! -f $CERTS_DIR/accounts-audit.key ]]; then
	echo "run.sh: no dev PKI (or no audit keys) in $CERTS_DIR: run 'make certs' first" >&2
	exit 1
fi
mkdir -p -m 0700 data # private: the services refuse a data directory others can write to

if [[ -t 1 ]]; then
	colour_accounts=$'\e[36m' colour_payments=$'\e[35m' colour_certgen=$'\e[33m' reset=$'\e[0m'
else
	colour_accounts="" colour_payments="" colour_certgen="" reset=""
fi

# prefix LABEL: copy stdin to stdout, each line prefixed with LABEL.
prefix() {
	local line
	while IFS= read -r line || [[ -n $line ]]; do
		printf '%s %s\n' "$1" "$line"
	done
}

pids=()
crl_pid=""
stopping=0
# stop_crl_loop: end the CRL refresh loop (by its pid) and wait for it.
stop_crl_loop() {
	if [[ -n $crl_pid ]]; then
		kill -TERM "$crl_pid" 2>/dev/null || true
		wait "$crl_pid" 2>/dev/null || true
		crl_pid=""
	fi
}
# stop: terminate the services that still run and wait for them to drain.
stop() {
	[[ $stopping == 1 ]] && return
	stopping=1
	stop_crl_loop
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

# crl_loop: re-sign the CRLs when due, now and every CRL_REFRESH_INTERVAL seconds. The
# sleep runs in the background so that a TERM ends the loop at once, sleep included; if
# run.sh itself dies without stopping it (SIGKILL), the loop ends after its next sleep.
crl_loop() {
	local sleep_pid="" main_pid=$$
	trap '[[ -n $sleep_pid ]] && kill "$sleep_pid" 2>/dev/null; exit 0' TERM
	while kill -0 "$main_pid" 2>/dev/null; do
		"$BIN/certgen" --dir "$CERTS_DIR" crl || echo "certgen crl failed; the CRLs go stale at their nextUpdate" >&2
		sleep "$CRL_REFRESH_INTERVAL" &
		sleep_pid=$!
		wait "$sleep_pid" || true
		sleep_pid=""
	done
}

echo "run.sh: starting accounts (localhost:50051) and payments (localhost:50052); Ctrl-C stops both" >&2
crl_loop > >(prefix "${colour_certgen}[certgen]${reset}") 2>&1 &
crl_pid=$!
start accounts "$colour_accounts"
start payments "$colour_payments"
echo "run.sh: accounts pid ${pids[0]}, payments pid ${pids[1]} (kill -HUP PID reloads that service's files)" >&2

# Run until either service exits or Ctrl-C runs the trap. A liveness poll rather than
# `wait -n`, which the bash 3.2 of macOS does not have.
while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null; do
	sleep 0.5
done
echo "run.sh: a service stopped; stopping the other" >&2
stop_crl_loop
rc=0
for pid in "${pids[@]}"; do
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
done
stopping=1
exit "$rc"
