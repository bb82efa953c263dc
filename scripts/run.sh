#!/usr/bin/env bash
# run.sh: start the accounts and payments services in the foreground (make run), with
# their logs interleaved and prefixed by the service name. Ctrl-C stops both; if one of
# them exits, the other is stopped too.
#
# run.sh pg (make run-pg) runs them on PostgreSQL instead, two replicas each: bin/devpg
# starts a throwaway cluster in a new directory under /tmp (TLS on, a database, an
# owner role and a runtime role per service, passwords in a password file), each
# service's migration step runs as its owner role (--migrate --db-runtime-role), then
# accounts serves on localhost:50051 and :50061 and payments on :50052 and :50062, as
# the runtime roles, payments reaching both accounts replicas (--accounts-addr list).
# The cluster stops and its directory goes when run.sh stops (or dies: devpg watches it).
#
# While they run, `certgen crl` runs every CRL_REFRESH_INTERVAL seconds (default 60) in
# the background, so the CRLs in certs/dev/crl.pem are re-signed before their nextUpdate
# (the services reload the file and would otherwise fail closed on a stale CRL). It
# prints a line only when it re-signed; the loop stops with the services.
#
# With BANK_SPIFFE_ENDPOINT set (scripts/run-spire.sh does), the services take their
# certificates from that SPIFFE Workload API instead: no dev PKI is needed and no CRL is
# refreshed.
#
# Run from anywhere: it changes to the repository root, where the services' defaults
# (certs/dev/, data/, localhost:50051 and :50052) point. For other settings run the
# binaries yourself (bin/accounts --help, bin/payments --help).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-sqlite}
case $MODE in
sqlite | pg) ;;
*)
	echo "run.sh: unknown mode '$MODE': want sqlite (default) or pg" >&2
	exit 1
	;;
esac
BIN=${BIN:-bin}
CERTS_DIR=${CERTS_DIR:-certs/dev}
CRL_REFRESH_INTERVAL=${CRL_REFRESH_INTERVAL:-60}
if [[ ! $CRL_REFRESH_INTERVAL =~ ^[1-9][0-9]*$ ]]; then
	echo "run.sh: CRL_REFRESH_INTERVAL must be a positive number of seconds, not '$CRL_REFRESH_INTERVAL'" >&2
	exit 1
fi
SPIFFE_ENDPOINT=${BANK_SPIFFE_ENDPOINT:-}
needed="accounts payments"
[[ -z $SPIFFE_ENDPOINT ]] && needed="$needed certgen"
[[ $MODE == pg ]] && needed="$needed devpg"
for b in $needed; do
	if [[ ! -x $BIN/$b ]]; then
		echo "run.sh: $BIN/$b not found: run 'make build' first" >&2
		exit 1
	fi
done
if [[ ( -z $SPIFFE_ENDPOINT && ! -f $CERTS_DIR/ca.crt ) || ! -f $CERTS_DIR/accounts-audit.key ]]; then
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
names=()
crl_pid=""
pg_dir=""
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
	stop_cluster
}
# stop_cluster: stop the PostgreSQL cluster of run.sh pg and remove its directory.
stop_cluster() {
	if [[ -n $pg_dir ]]; then
		"$BIN/devpg" stop --dir "$pg_dir" || echo "run.sh: devpg stop failed; the cluster is in $pg_dir" >&2
		rm -rf "$pg_dir"
		pg_dir=""
	fi
}
trap 'echo; echo "run.sh: stopping the services" >&2; stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# start NAME LABEL COLOUR ARGS...: start service NAME in the background, its logs
# prefixed with [LABEL].
start() {
	local name=$1 label=$2 colour=$3
	shift 3
	"$BIN/$name" "$@" > >(prefix "${colour}[$label]${reset}") 2>&1 &
	pids+=("$!")
	names+=("$label")
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

if [[ -n $SPIFFE_ENDPOINT ]]; then
	echo "run.sh: identities from the SPIFFE Workload API at $SPIFFE_ENDPOINT (no dev PKI, no CRL)" >&2
else
	crl_loop > >(prefix "${colour_certgen}[certgen]${reset}") 2>&1 &
	crl_pid=$!
fi
if [[ $MODE == sqlite ]]; then
	echo "run.sh: starting accounts (localhost:50051) and payments (localhost:50052); Ctrl-C stops both" >&2
	start accounts accounts "$colour_accounts"
	start payments payments "$colour_payments"
else
	pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/mtlsbank-pg.XXXXXX")
	echo "run.sh: starting a PostgreSQL cluster in $pg_dir" >&2
	pg_env=$("$BIN/devpg" start --dir "$pg_dir" --watch-pid $$)
	eval "$pg_env" # PGPASSFILE, ACCOUNTS_OWNER_DB, ACCOUNTS_DB, PAYMENTS_OWNER_DB, PAYMENTS_DB
	export PGPASSFILE
	"$BIN/accounts" --migrate --db "$ACCOUNTS_OWNER_DB" --db-runtime-role accounts_app
	"$BIN/payments" --migrate --db "$PAYMENTS_OWNER_DB" --db-runtime-role payments_app
	echo "run.sh: starting accounts (localhost:50051, :50061) and payments (localhost:50052, :50062) on PostgreSQL; Ctrl-C stops them all" >&2
	for i in 1 2; do
		port=$((i == 1 ? 0 : 10))
		start accounts "accounts-$i" "$colour_accounts" --db "$ACCOUNTS_DB" \
			--listen "localhost:$((50051 + port))" --metrics-listen "localhost:$((9091 + port * 10))" \
			--crl-state "data/accounts-$i.crl-state.json" --audit-file "data/accounts-$i.audit.jsonl"
	done
	for i in 1 2; do
		port=$((i == 1 ? 0 : 10))
		start payments "payments-$i" "$colour_payments" --db "$PAYMENTS_DB" \
			--listen "localhost:$((50052 + port))" --metrics-listen "localhost:$((9092 + port * 10))" \
			--crl-state "data/payments-$i.crl-state.json" --audit-file "data/payments-$i.audit.jsonl" --accounts-addr localhost:50051,localhost:50061
	done
fi
list=""
for i in "${!pids[@]}"; do
	list="$list${list:+, }${names[$i]} pid ${pids[$i]}"
done
echo "run.sh: $list (kill -HUP PID reloads that service's files; Ctrl-C or kill -TERM $$ stops everything)" >&2

# Run until a service exits or Ctrl-C runs the trap. A liveness poll rather than
# `wait -n`, which the bash 3.2 of macOS does not have.
all_alive() {
	local pid
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null || return 1
	done
}
while all_alive; do
	sleep 0.5
done
echo "run.sh: a service stopped; stopping the others" >&2
stop_crl_loop
rc=0
for pid in "${pids[@]}"; do
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
done
stop_cluster
stopping=1
exit "$rc"
