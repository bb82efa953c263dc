#!/usr/bin/env bash
# demo.sh: start both services on a fresh data directory, walk every success and every
# rejection path with bankctl and with stock grpcurl, print the table
#
#   path | as | expected | actual | PASS/FAIL
#
# stop the services and exit non-zero if any path did not go as expected (make demo).
#
# Usage: scripts/demo.sh [--accounts-port N] [--payments-port N]
#                        [--accounts-metrics-port N] [--payments-metrics-port N]
#                        [--bin DIR] [--certs DIR] [--grpcurl FILE] [--quiet]
#
# Defaults: the services' own ports (50051, 50052, 9091, 9092), bin/, certs/dev/ and
# bin/tools/grpcurl. --quiet prints the table only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

die() {
	echo "demo.sh: $*" >&2
	exit 2
}

ACCOUNTS_PORT=50051 PAYMENTS_PORT=50052 ACCOUNTS_METRICS_PORT=9091 PAYMENTS_METRICS_PORT=9092
BIN=$ROOT/bin CERTS=$ROOT/certs/dev GRPCURL=${GRPCURL:-$ROOT/bin/tools/grpcurl} QUIET=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--quiet | -h | --help) ;;
	*) [[ $# -ge 2 ]] || die "$1 needs a value (see --help)" ;;
	esac
	case $1 in
	--accounts-port) ACCOUNTS_PORT=$2 ;;
	--payments-port) PAYMENTS_PORT=$2 ;;
	--accounts-metrics-port) ACCOUNTS_METRICS_PORT=$2 ;;
	--payments-metrics-port) PAYMENTS_METRICS_PORT=$2 ;;
	--bin) BIN=$(cd "$2" && pwd) ;;
	--certs) CERTS=$(cd "$2" && pwd) ;;
	--grpcurl) GRPCURL=$2 ;;
	--quiet)
		QUIET=1
		shift
		continue
		;;
	-h | --help)
		sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "demo.sh: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift 2
done

for b in accounts payments bankctl; do
	[[ -x $BIN/$b ]] || die "$BIN/$b not found: run 'make build'"
done
[[ -x $GRPCURL ]] || die "grpcurl not found at $GRPCURL: run 'make tools'"
[[ -f $CERTS/ca.crt ]] || die "no dev PKI in $CERTS: run 'make certs'"

ACCOUNTS_ADDR=127.0.0.1:$ACCOUNTS_PORT
PAYMENTS_ADDR=127.0.0.1:$PAYMENTS_PORT

# bankctl reads BANK_* variables: start from none but ours, so that a shell's settings
# cannot change what the demo shows.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^BANK_' || true)
export BANK_ACCOUNTS_ADDR=$ACCOUNTS_ADDR BANK_PAYMENTS_ADDR=$PAYMENTS_ADDR BANK_CERTS_DIR=$CERTS

if [[ -t 1 ]]; then
	GREEN=$'\e[32m' RED=$'\e[31m' BOLD=$'\e[1m' DIM=$'\e[2m' RESET=$'\e[0m'
else
	GREEN="" RED="" BOLD="" DIM="" RESET=""
fi

say() { [[ $QUIET == 1 ]] || printf '%s\n' "$*"; }
indent() {
	if [[ $QUIET == 1 ]]; then
		cat >/dev/null
	else
		sed 's/^/    /'
	fi
}

# ---------------------------------------------------------------- services
DATA=$(mktemp -d "${TMPDIR:-/tmp}/mtlsbank-demo.XXXXXX")
PIDS=()
KEEP_DATA=0
cleanup() {
	local pid
	# ${a[@]+"${a[@]}"}: an empty array under set -u in the bash 3.2 of macOS.
	for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null || true; done
	if [[ $KEEP_DATA == 1 ]]; then
		echo "demo.sh: kept the data directory and the service logs in $DATA" >&2
	else
		rm -rf "$DATA"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME ARGS...: start a service in the background, logging to $DATA/NAME.log.
start() {
	local name=$1
	shift
	"$BIN/$name" --db "$DATA/$name.db" --cert "$CERTS/$name.crt" --key "$CERTS/$name.key" \
		--ca "$CERTS/ca.crt" --intermediates "$CERTS/intermediates.crt" --crl "$CERTS/crl.pem" --audit-key "$CERTS/$name-audit.key" "$@" >"$DATA/$name.log" 2>&1 &
	PIDS+=("$!")
}

# wait_ready NAME PID: poll the service's health over mTLS until it answers SERVING, the
# process dies, or 30 seconds pass.
wait_ready() {
	local name=$1 pid=$2 deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "demo.sh: the $name service exited during start-up; its log:" >&2
			sed 's/^/    /' "$DATA/$name.log" >&2
			KEEP_DATA=1
			exit 1
		fi
		if "$BIN/bankctl" --as auditor --timeout 1s health --service "$name" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	echo "demo.sh: the $name service did not become healthy within 30s; its log:" >&2
	sed 's/^/    /' "$DATA/$name.log" >&2
	KEEP_DATA=1
	exit 1
}

# bankctl checks the server's SPIFFE ID, so each address is asked as the service it is for.
for svc in accounts payments; do
	addr=$ACCOUNTS_ADDR
	[[ $svc == payments ]] && addr=$PAYMENTS_ADDR
	if "$BIN/bankctl" --as auditor --timeout 1s --addr "$addr" health --service "$svc" >/dev/null 2>&1; then
		die "something already serves on $addr (make run?): stop it, or pass --accounts-port/--payments-port"
	fi
done

say "${BOLD}mtlsbank demo${RESET}: every success and every rejection path, first with bankctl, then"
say "with stock grpcurl. Each path shows the command and what a person sees; the table at the"
say "end compares what was expected with what happened."
say ""
say "${BOLD}Starting the services${RESET} (fresh data in $DATA)"
start accounts --listen "$ACCOUNTS_ADDR" --metrics-listen "127.0.0.1:$ACCOUNTS_METRICS_PORT"
wait_ready accounts "${PIDS[0]}"
start payments --listen "$PAYMENTS_ADDR" --metrics-listen "127.0.0.1:$PAYMENTS_METRICS_PORT" \
	--accounts-addr "$ACCOUNTS_ADDR" --accounts-server-name localhost
wait_ready payments "${PIDS[1]}"
say "    accounts at $ACCOUNTS_ADDR, payments at $PAYMENTS_ADDR"

# ---------------------------------------------------------------- the table
ROWS=()
# record PATH AS EXPECTED ACTUAL: add a row; the verdict is PASS when ACTUAL starts with
# EXPECTED.
record() {
	local verdict=FAIL
	[[ $4 == "$3"* ]] && verdict=PASS
	ROWS+=("$(printf '%-46s | %-10s | %-26s | %-44s | %s' "$1" "$2" "$3" "$4" "$verdict")")
}

# ---------------------------------------------------------------- bankctl
# quote ARGS...: the arguments as a person would type them, each after a space.
quote() {
	local a
	for a in "$@"; do
		case $a in
		*[[:space:]]* | *\'* | "") printf ' "%s"' "$a" ;;
		*) printf ' %s' "$a" ;;
		esac
	done
}

OUT=""
# bk EXPECTED AS PATH -- BANKCTL_ARGS...: run bankctl as AS ("none": no certificate).
# EXPECTED is OK or the failure kind bankctl reports (--output json: error.kind). Shows the
# command and what a person sees; leaves stdout in OUT.
bk() {
	local expected=$1 as=$2 path=$3
	shift 4
	local who=()
	[[ $as == none ]] || who=(--as "$as")
	say "${DIM}\$ bankctl$(quote ${who[@]+"${who[@]}"} "$@")${RESET}"
	local rc=0 err
	if [[ $expected == OK ]]; then
		OUT=$("$BIN/bankctl" ${who[@]+"${who[@]}"} "$@" 2>"$DATA/stderr") || rc=$?
		err=$(cat "$DATA/stderr")
		[[ -z $OUT ]] || printf '%s\n' "$OUT" | indent
		[[ -z $err ]] || printf '%s\n' "$err" | indent
		if [[ $rc == 0 ]]; then
			record "bankctl: $path" "$as" OK OK
		else
			record "bankctl: $path" "$as" OK "exit $rc"
		fi
		return 0
	fi
	OUT=$("$BIN/bankctl" --output json ${who[@]+"${who[@]}"} "$@" 2>"$DATA/stderr") || rc=$?
	err=$(cat "$DATA/stderr")
	local kind="" diagnosis="" code="" message=""
	[[ $err =~ \"kind\":\"([^\"]*)\" ]] && kind=${BASH_REMATCH[1]}
	[[ $err =~ \"diagnosis\":\"(([^\"\\]|\\.)*)\" ]] && diagnosis=${BASH_REMATCH[1]}
	[[ $err =~ \"code\":\"([^\"]*)\" ]] && code=${BASH_REMATCH[1]}
	[[ $err =~ \"message\":\"(([^\"\\]|\\.)*)\" ]] && message=${BASH_REMATCH[1]}
	diagnosis=${diagnosis//\\\"/\"} message=${message//\\\"/\"}
	if [[ $rc == 0 ]]; then
		record "bankctl: $path" "$as" "$expected" "OK"
		printf '%s\n' "$OUT" | indent
		return 0
	fi
	local local_check=""
	[[ $err == *'"local":true'* ]] && local_check=" (local check: nothing was sent)"
	{
		echo "bankctl: $diagnosis"
		[[ -z $code ]] || echo "grpc status: $code: $message$local_check"
	} | indent
	record "bankctl: $path" "$as" "$expected" "${kind:-?} (exit $rc)"
}

say ""
say "${BOLD}bankctl: success paths${RESET}"
bk OK alice "whoami" -- whoami
bk OK teller "whoami on payments" -- whoami --service payments
bk OK auditor "health" -- health --service payments
bk OK teller "open alice's account" -- accounts open --owner spiffe://bank.local/customer/alice --display-name "Alice current"
ALICE_ACCOUNT=$(awk 'NR == 2 { print $1 }' <<<"$OUT")
bk OK teller "open bob's account" -- accounts open --owner spiffe://bank.local/customer/bob --display-name "Bob savings"
BOB_ACCOUNT=$(awk 'NR == 2 { print $1 }' <<<"$OUT")
KEY="demo-salary-$$-$RANDOM"
bk OK teller "deposit" -- accounts deposit --account-id "$ALICE_ACCOUNT" --amount 100.00 --reference salary --idempotency-key "$KEY"
bk OK teller "deposit retried (same key)" -- accounts deposit --account-id "$ALICE_ACCOUNT" --amount 100.00 --reference salary --idempotency-key "$KEY"
bk OK alice "read own account" -- accounts get --id "$ALICE_ACCOUNT"
bk OK alice "list own accounts" -- accounts list
bk OK alice "pay bob" -- payments create --from-account-id "$ALICE_ACCOUNT" --to-account-id "$BOB_ACCOUNT" --amount 12.50 --memo lunch
PAYMENT=$(awk 'NR == 2 { print $1 }' <<<"$OUT")
bk OK alice "read own payment" -- payments get --id "$PAYMENT"
bk OK auditor "list payments" -- payments list
bk OK auditor "watch the ledger" -- ledger watch --limit 4

say ""
say "${BOLD}bankctl: rejection paths${RESET} (one line says what happened and what to do)"
bk no-client-cert none "no certificate" -- whoami
bk client-cert-untrusted rogue "rogue CA" -- whoami
bk client-cert-untrusted selfsigned "self-signed" -- whoami
bk client-cert-expired expired "expired (checked locally)" -- whoami
bk client-cert-expired expired "expired (server's verdict)" -- --skip-local-check whoami
bk client-cert-not-yet-valid notyet "not yet valid" -- whoami
bk client-cert-revoked revoked "revoked" -- whoami
bk client-cert-wrong-usage serveronly "serverAuth only" -- whoami
bk client-cert-is-ca cacert "CA as client" -- whoami
bk server-cert-untrusted alice "server from another CA" -- --ca "$CERTS/rogue-ca.crt" whoami
bk server-name-mismatch alice "server name mismatch" -- --server-name bank.example whoami
bk server-identity-mismatch alice "payments answering an accounts call" -- --addr "$PAYMENTS_ADDR" whoami
bk unreachable alice "service not running" -- --addr 127.0.0.1:1 whoami
bk permission-denied alice "wrong role" -- accounts open --owner spiffe://bank.local/customer/alice
bk permission-denied intern "unmapped identity" -- accounts list
bk permission-denied alice "another customer's account" -- accounts get --id "$BOB_ACCOUNT"
bk permission-denied alice "pay from another's account" -- payments create --from-account-id "$BOB_ACCOUNT" --to-account-id "$ALICE_ACCOUNT" --amount 1.00
bk permission-denied alice "spoofed delegation" -- --on-behalf-of spiffe://bank.local/customer/bob accounts transfer --from-account-id "$BOB_ACCOUNT" --to-account-id "$ALICE_ACCOUNT" --amount 1.00
bk request-failed teller "overdraft" -- accounts withdraw --account-id "$BOB_ACCOUNT" --amount 1000000.00
bk request-failed alice "malformed ids (the request's rules)" -- payments create --from-account-id acc_x --to-account-id "$BOB_ACCOUNT" --amount 1.00 --idempotency-key "two words"
bk usage teller "amount too precise" -- accounts deposit --account-id "$ALICE_ACCOUNT" --amount 1.001

# ---------------------------------------------------------------- grpcurl
say ""
say "${BOLD}grpcurl: every path with a stock tool${RESET} (each command as typed in the repository root)"
SHOW_COMMANDS=1
[[ $QUIET == 0 ]] || SHOW_COMMANDS=0
export GRPCURL CERTS_DIR=$CERTS ACCOUNTS_ADDR PAYMENTS_ADDR SHOW_COMMANDS
# show_log FILE: a path script's stderr, its command lines dimmed like bankctl's.
show_log() {
	local line
	while IFS= read -r line; do
		case $line in
		'$ '*) say "${DIM}${line}${RESET}" ;;
		*) say "$line" ;;
		esac
	done <"$1"
}
for script in scripts/grpcurl/ok-*.sh scripts/grpcurl/reject-*.sh; do
	name=$(basename "$script" .sh)
	# The path's description: the script's first comment, up to the shellcheck directive.
	say "${BOLD}${name}${RESET}: $(awk 'NR == 1 { next } !/^#/ || /^# shellcheck/ { exit } { sub(/^# ?/, ""); printf "%s%s", sep, $0; sep = " " }' "$script")"
	rc=0
	out=$("$script" 2>"$DATA/stderr") || rc=$?
	found=0
	while IFS= read -r line; do
		[[ $line == *" | "* ]] || continue
		ROWS+=("$line")
		found=1
	done <<<"$out"
	show_log "$DATA/stderr"
	if [[ $rc != 0 ]]; then
		[[ $found == 1 ]] || record "$name" - "exit 0" "exit $rc"
		say "${DIM}$script failed (above)${RESET}"
	fi
done

# ---------------------------------------------------------------- summary
printf '\n%s\n' "${BOLD}$(printf '%-46s | %-10s | %-26s | %-44s | %s' PATH AS EXPECTED ACTUAL RESULT)${RESET}"
pass=0 fail=0
for r in "${ROWS[@]}"; do
	case $r in
	*"| PASS")
		pass=$((pass + 1))
		printf '%s\n' "${r%PASS}${GREEN}PASS${RESET}"
		;;
	*)
		fail=$((fail + 1))
		printf '%s\n' "${r%FAIL}${RED}FAIL${RESET}"
		;;
	esac
done
echo
if [[ $fail -gt 0 ]]; then
	echo "${RED}${fail} of $((pass + fail)) paths did not go as expected${RESET}; the services' logs say why: $DATA/accounts.log, $DATA/payments.log"
	KEEP_DATA=1
	exit 1
fi
echo "${GREEN}all ${pass} paths went as expected${RESET}"
