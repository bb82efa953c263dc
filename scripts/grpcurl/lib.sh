# shellcheck shell=bash
# lib.sh: shared by the grpcurl path scripts in this directory; source it, do not run it.
#
# Each path script calls the services with stock grpcurl (-cacert/-cert/-key, server
# reflection) and checks the outcome with `expect`, which prints one row
#
#   path | as | expected | actual | PASS/FAIL
#
# and makes the script exit non-zero if any row failed.
#
# Environment (defaults in brackets):
#   GRPCURL        grpcurl binary            [bin/tools/grpcurl]
#   CERTS_DIR      dev PKI (make certs)      [certs/dev]
#   ACCOUNTS_ADDR  accounts service          [localhost:50051]
#   PAYMENTS_ADDR  payments service          [localhost:50052]
#   SERVER_NAME    TLS name to verify        [the host of the address]
#   GRPCURL_TIMEOUT  -max-time of one call   [10]
#   SHOW_COMMANDS=1  print each grpcurl command line and the start of its output (on stderr)
#   VERBOSE=1      print grpcurl's output for every call, not only for failures

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GRPCURL=${GRPCURL:-$REPO_ROOT/bin/tools/grpcurl}
CERTS_DIR=${CERTS_DIR:-$REPO_ROOT/certs/dev}
ACCOUNTS_ADDR=${ACCOUNTS_ADDR:-localhost:50051}
PAYMENTS_ADDR=${PAYMENTS_ADDR:-localhost:50052}
SERVER_NAME=${SERVER_NAME:-}
GRPCURL_TIMEOUT=${GRPCURL_TIMEOUT:-10}
VERBOSE=${VERBOSE:-0}
SHOW_COMMANDS=${SHOW_COMMANDS:-0}
PATH_NAME=${PATH_NAME:-$(basename "$0" .sh)}

# Fully qualified names used by the scripts.
ACCOUNTS=bank.accounts.v1.AccountsService
PAYMENTS=bank.payments.v1.PaymentsService
IDENTITY=bank.identity.v1.IdentityService

FAILURES=0
LAST_OUTPUT=""

if [[ ! -x $GRPCURL ]]; then
	echo "grpcurl not found at $GRPCURL: run 'make tools' (or set GRPCURL)" >&2
	exit 2
fi
if [[ ! -f $CERTS_DIR/ca.crt ]]; then
	echo "no dev PKI in $CERTS_DIR: run 'make certs' (or set CERTS_DIR)" >&2
	exit 2
fi

if [[ -t 1 ]]; then
	_GREEN=$'\e[32m' _RED=$'\e[31m' _RESET=$'\e[0m'
else
	_GREEN="" _RED="" _RESET=""
fi

# row PATH AS EXPECTED ACTUAL VERDICT: one line of the table.
row() {
	local verdict=$5
	case $verdict in
	PASS) verdict="${_GREEN}PASS${_RESET}" ;;
	FAIL) verdict="${_RED}FAIL${_RESET}" ;;
	esac
	printf '%-46s | %-10s | %-26s | %-44s | %s\n' "$1" "$2" "$3" "$4" "$verdict"
}

# show_command ARGS...: print, on stderr, the grpcurl command line with ARGS as a person
# would type it in the repository root: paths under it relative, an argument with spaces
# or quotes (a JSON body) in single quotes.
show_command() {
	local a line="\$ ${GRPCURL#"$REPO_ROOT"/}"
	for a in "$@"; do
		a=${a#"$REPO_ROOT"/}
		case $a in
		'' | *[!A-Za-z0-9_./:=@%+,-]*) line+=" '${a//\'/\'\\\'\'}'" ;;
		*) line+=" $a" ;;
		esac
	done
	printf '%s\n' "$line" >&2
}

# show_output: print, on stderr, the first lines of LAST_OUTPUT, indented.
show_output() {
	local max=8 n
	n=$(printf '%s\n' "$LAST_OUTPUT" | wc -l)
	printf '%s\n' "$LAST_OUTPUT" | head -n "$max" | sed 's/^/    /' >&2
	if ((n > max)); then
		echo "    ... ($((n - max)) more lines)" >&2
	fi
}

# grpcurl_as NAME ARGS...: run grpcurl as NAME (certs/dev/NAME.crt and .key; "none" sends
# no certificate), trusting only the bank CA. Output (stdout and stderr) in LAST_OUTPUT;
# returns grpcurl's exit status.
grpcurl_as() {
	local name=$1
	shift
	local args=(-cacert "$CERTS_DIR/ca.crt" -connect-timeout 5 -max-time "$GRPCURL_TIMEOUT")
	if [[ $name != none ]]; then
		args+=(-cert "$CERTS_DIR/$name.crt" -key "$CERTS_DIR/$name.key")
	fi
	if [[ -n $SERVER_NAME ]]; then
		args+=(-servername "$SERVER_NAME")
	fi
	local rc=0
	if [[ $SHOW_COMMANDS == 1 ]]; then
		show_command "${args[@]}" "$@"
	fi
	LAST_OUTPUT=$("$GRPCURL" "${args[@]}" "$@" 2>&1) || rc=$?
	if [[ $VERBOSE == 1 ]]; then
		printf '%s\n' "$LAST_OUTPUT" | sed 's/^/    /' >&2
	elif [[ $SHOW_COMMANDS == 1 ]]; then
		show_output
	fi
	return "$rc"
}

# outcome RC: classify the last grpcurl run as OK, a gRPC code name, or a transport outcome.
outcome() {
	local rc=$1 out=$LAST_OUTPUT alert
	if [[ $rc == 0 ]]; then
		echo OK
		return
	fi
	# grpcurl prints a status as "Code: NAME", or as "rpc error: code = NAME desc = ..."
	# when its reflection requests fail.
	if [[ $out =~ Code:\ ([A-Za-z]+) || $out =~ code\ =\ ([A-Za-z]+) ]]; then
		echo "${BASH_REMATCH[1]}"
		return
	fi
	# grpcurl reports a failed connection as: Failed to dial target host "...": REASON
	if [[ $out =~ remote\ error:\ tls:\ ([a-z ]+) ]]; then
		alert=${BASH_REMATCH[1]}
		echo "handshake rejected ($alert)"
		return
	fi
	case $out in
	*"broken pipe"* | *"connection reset by peer"*) echo "handshake rejected (connection closed)" ;;
	*"x509:"* | *"tls: failed to verify"*) echo "server certificate rejected" ;;
	*"connection refused"*) echo "unreachable" ;;
	*"context deadline exceeded"* | *DeadlineExceeded*) echo "timeout" ;;
	*) echo "error (exit $rc)" ;;
	esac
}

# expect EXPECTED as NAME [--match TEXT] -- GRPCURL_ARGS...
#
# EXPECTED is OK, a gRPC code name (PermissionDenied, ...), "handshake rejected", or
# STREAMED (a server stream delivered messages until -max-time ended it). With --match
# the output must also contain TEXT. Prints the row; a mismatch counts as a failure.
expect() {
	local expected=$1 label=${PATH_NAME}
	[[ $2 == as ]] || {
		echo "expect: usage: expect EXPECTED as NAME [--label L] [--match TEXT] -- ARGS..." >&2
		exit 2
	}
	local name=$3 match=""
	shift 3
	while [[ $# -gt 0 && $1 != -- ]]; do
		case $1 in
		--match)
			match=$2
			shift 2
			;;
		--label)
			label="$PATH_NAME: $2"
			shift 2
			;;
		*)
			echo "expect: unknown option $1" >&2
			exit 2
			;;
		esac
	done
	[[ ${1:-} == -- ]] && shift
	local rc=0
	grpcurl_as "$name" "$@" || rc=$?
	local actual
	actual=$(outcome "$rc")
	if [[ $expected == STREAMED && ($actual == OK || $actual == DeadlineExceeded) && $LAST_OUTPUT == *"{"* ]]; then
		actual=STREAMED
	fi
	local verdict=PASS
	case $actual in
	"$expected"*) ;;
	*) verdict=FAIL ;;
	esac
	if [[ $verdict == PASS && -n $match && $LAST_OUTPUT != *"$match"* ]]; then
		verdict=FAIL
		actual="$actual, output lacks $match"
	fi
	row "$label" "$name" "$expected" "$actual" "$verdict"
	if [[ $verdict == FAIL ]]; then
		FAILURES=$((FAILURES + 1))
		{
			echo "    grpcurl $*"
			printf '%s\n' "$LAST_OUTPUT" | sed 's/^/    | /'
		} >&2
	fi
}

# setup as NAME -- GRPCURL_ARGS...: a call that prepares a path (opening an account, a
# deposit). It must succeed; its JSON output is printed on stdout for json_field.
setup() {
	local name=$2
	shift 3
	local rc=0
	grpcurl_as "$name" "$@" || rc=$?
	if [[ $rc != 0 ]]; then
		row "$PATH_NAME: setup" "$name" OK "$(outcome "$rc")" FAIL >&2
		{
			echo "    grpcurl $*"
			printf '%s\n' "$LAST_OUTPUT" | sed 's/^/    | /'
		} >&2
		return 1
	fi
	printf '%s\n' "$LAST_OUTPUT"
}

# json_field NAME: the first string value of field NAME in the JSON on stdin.
json_field() {
	sed -n "s/^ *\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" | head -n 1
}

# open_account OWNER [CURRENCY]: opens an account as the teller and prints its id.
open_account() {
	local out
	out=$(setup as teller -- -d "{\"owner\":\"$1\",\"currency\":\"${2:-EUR}\",\"display_name\":\"grpcurl $PATH_NAME\"}" \
		"$ACCOUNTS_ADDR" "$ACCOUNTS/OpenAccount") || return 1
	json_field id <<<"$out"
}

# deposit ACCOUNT_ID MINOR_UNITS [CURRENCY]: deposits as the teller.
deposit() {
	setup as teller -- -d "{\"account_id\":\"$1\",\"amount\":{\"currency_code\":\"${3:-EUR}\",\"minor_units\":\"$2\"},\"idempotency_key\":\"grpcurl-$PATH_NAME-$RANDOM$RANDOM\"}" \
		"$ACCOUNTS_ADDR" "$ACCOUNTS/Deposit" >/dev/null
}

# finish: the script's exit status.
finish() {
	if [[ $FAILURES -gt 0 ]]; then
		exit 1
	fi
	exit 0
}
