#!/usr/bin/env bash
# Rejection path: alice sends the delegation metadata that only the payments service may
# send, claiming to act for bob, straight to the accounts service. -rpc-header (not -H)
# sends it on the call only, not on grpcurl's reflection requests.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

bobs=$(open_account spiffe://bank.local/customer/bob)
alices=$(open_account spiffe://bank.local/customer/alice)
deposit "$bobs" 5000
expect PermissionDenied as alice --label "transfer as bob" -- -rpc-header 'x-bank-on-behalf-of: spiffe://bank.local/customer/bob' \
	-d "{\"from_account_id\":\"$bobs\",\"to_account_id\":\"$alices\",\"amount\":{\"currency_code\":\"EUR\",\"minor_units\":\"100\"},\"idempotency_key\":\"grpcurl-spoof-$RANDOM$RANDOM\"}" \
	"$ACCOUNTS_ADDR" "$ACCOUNTS/Transfer"
expect PermissionDenied as alice --label "read as bob" -- -rpc-header 'x-bank-on-behalf-of: spiffe://bank.local/customer/bob' \
	-d "{\"id\":\"$bobs\"}" "$ACCOUNTS_ADDR" "$ACCOUNTS/GetAccount"
finish
