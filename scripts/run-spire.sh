#!/usr/bin/env bash
# run-spire.sh: run the bank on SPIRE (make run-spire). It starts a SPIRE server and agent
# for the trust domain bank.local (configuration in scripts/spire/, state in data/spire/,
# started afresh each time), registers the bank's identities, and runs both services in the
# foreground (scripts/run.sh) with their certificates from the SPIFFE Workload API. Ctrl-C
# stops everything.
#
# Registration entries (unix workload attestor, by the path of the binary):
#   spiffe://bank.local/service/accounts   unix:path:<repo>/bin/accounts   (DNS SAN localhost)
#   spiffe://bank.local/service/payments   unix:path:<repo>/bin/payments   (DNS SAN localhost)
#   spiffe://bank.local/teller/tina        unix:path:<repo>/data/spire/bin/teller/bankctl
#   spiffe://bank.local/customer/alice     unix:path:<repo>/data/spire/bin/alice/bankctl
#   spiffe://bank.local/customer/bob       unix:path:<repo>/data/spire/bin/bob/bankctl
#   spiffe://bank.local/auditor/audrey     unix:path:<repo>/data/spire/bin/auditor/bankctl
# The copies of bankctl are how the agent tells the people apart.
#
# SPIRE_SVID_TTL (default 60s) is the X.509-SVID lifetime: the agent rotates each SVID at
# about half of it, so `bankctl whoami` shows a new serial and not_after every ~30s.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
TOOLS=${TOOLS:-bin/tools}
SPIRE_SVID_TTL=${SPIRE_SVID_TTL:-60s}
for b in "$BIN/accounts" "$BIN/payments" "$BIN/bankctl" "$TOOLS/spire-server" "$TOOLS/spire-agent"; do
	if [[ ! -x $b ]]; then
		echo "run-spire.sh: $b not found: run 'make build spire' first (make run-spire does)" >&2
		exit 1
	fi
done

mkdir -p -m 0700 data
rm -rf data/spire
mkdir -m 0700 data/spire
state=$(cd data/spire && pwd -P)
bin=$(cd "$BIN" && pwd -P)
# Unix socket paths are limited to about 100 bytes: the sockets live in a short directory.
sockets=$(mktemp -d "${TMPDIR:-/tmp}/mtlsbank-spire.XXXXXX")
export SPIRE_DATA_DIR=$state
export SPIRE_SERVER_SOCKET=$sockets/server.sock
export SPIRE_AGENT_SOCKET=$sockets/agent.sock
export SPIRE_SERVER_PORT=${SPIRE_SERVER_PORT:-8081}
export SPIRE_SVID_TTL
export SPIRE_LOG_LEVEL=${SPIRE_LOG_LEVEL:-INFO}
endpoint=unix://$SPIRE_AGENT_SOCKET

server_pid="" agent_pid="" run_pid=""
# stop_all: stop the services (through run.sh), then the agent and the server, by pid.
stop_all() {
	local pid
	if [[ -n $run_pid ]]; then
		kill -TERM "$run_pid" 2>/dev/null || true
		wait "$run_pid" 2>/dev/null || true
		run_pid=""
	fi
	for pid in $agent_pid $server_pid; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	agent_pid="" server_pid=""
	rm -rf "$sockets"
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

server() { "$TOOLS/spire-server" "$@" -socketPath "$SPIRE_SERVER_SOCKET"; }

# wait_healthy NAME PID CMD...: poll a healthcheck until it passes (60s at most).
wait_healthy() {
	local name=$1 pid=$2 i
	shift 2
	for ((i = 0; i < 300; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "run-spire.sh: $name exited; its log:" >&2
			tail -20 "$state/$name.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "run-spire.sh: $name not healthy after 60s; its log: $state/$name.log" >&2
	exit 1
}

echo "run-spire.sh: starting the SPIRE server (trust domain bank.local, X.509-SVID TTL $SPIRE_SVID_TTL; log data/spire/spire-server.log)" >&2
"$TOOLS/spire-server" run -config scripts/spire/server.conf -expandEnv >"$state/spire-server.log" 2>&1 &
server_pid=$!
wait_healthy spire-server "$server_pid" "$TOOLS/spire-server" healthcheck -socketPath "$SPIRE_SERVER_SOCKET"
server bundle show >"$state/bootstrap-bundle.crt"
node=spiffe://bank.local/node/dev
token=$(server token generate -spiffeID "$node" -ttl 600 | awk '/^Token:/ { print $2 }')

echo "run-spire.sh: starting the SPIRE agent (join token; log data/spire/spire-agent.log)" >&2
"$TOOLS/spire-agent" run -config scripts/spire/agent.conf -expandEnv -joinToken "$token" >"$state/spire-agent.log" 2>&1 &
agent_pid=$!
wait_healthy spire-agent "$agent_pid" "$TOOLS/spire-agent" healthcheck -socketPath "$SPIRE_AGENT_SOCKET"

# entry ID SPIFFE_ID PATH [DNS...]: register the binary at PATH as SPIFFE_ID.
entry() {
	local id=$1 spiffe_id=$2 path=$3 dns
	shift 3
	local args=(entry create -entryID "$id" -parentID "$node" -spiffeID "$spiffe_id" -selector "unix:path:$path")
	for dns in "$@"; do
		args+=(-dns "$dns")
	done
	server "${args[@]}" >/dev/null
	printf '  %-38s unix:path:%s\n' "$spiffe_id" "$path" >&2
}
echo "run-spire.sh: registration entries:" >&2
entry accounts spiffe://bank.local/service/accounts "$bin/accounts" localhost accounts
entry payments spiffe://bank.local/service/payments "$bin/payments" localhost payments
for person in teller:spiffe://bank.local/teller/tina alice:spiffe://bank.local/customer/alice \
	bob:spiffe://bank.local/customer/bob auditor:spiffe://bank.local/auditor/audrey; do
	name=${person%%:*}
	mkdir -p "$state/bin/$name"
	cp "$bin/bankctl" "$state/bin/$name/bankctl" # a copy, not a link: the agent selects by path
	entry "$name" "${person#*:}" "$state/bin/$name/bankctl"
done

cat >&2 <<MSG
run-spire.sh: the Workload API is at $endpoint. In another terminal, from $(pwd -P):
  export SPIFFE_ENDPOINT_SOCKET=$endpoint
  data/spire/bin/alice/bankctl whoami            # run it again in 30s: a new SERIAL and NOT AFTER
  data/spire/bin/teller/bankctl accounts open --owner spiffe://bank.local/customer/alice --currency EUR
  data/spire/bin/auditor/bankctl payments list
  curl -s localhost:9091/metrics | grep -E 'bank_svid|bank_workload_api'
Revocation here is expiry: 'bin/tools/spire-server entry delete -entryID alice -socketPath $SPIRE_SERVER_SOCKET'
stops alice's bankctl once its SVID expires (at most $SPIRE_SVID_TTL).
MSG

# The services start at once; each waits for its SVID (the agent's first sync of the new
# entries takes a few seconds) and logs every rotation. run.sh runs in the background so
# that a signal to this script is handled at once (bash defers traps while a foreground
# child runs); it ends the services through run.sh.
BANK_SPIFFE_ENDPOINT=$endpoint scripts/run.sh &
run_pid=$!
rc=0
wait "$run_pid" || rc=$?
run_pid=""
exit "$rc"
