#!/usr/bin/env bash
# Rejection path: alice touches bob's account.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

bobs=$(open_account spiffe://bank.local/customer/bob)
alices=$(open_account spiffe://bank.local/customer/alice)
deposit "$bobs" 5000
expect PermissionDenied as alice --label "reads bob's account" -- -d "{\"id\":\"$bobs\"}" "$ACCOUNTS_ADDR" "$ACCOUNTS/GetAccount"
expect PermissionDenied as alice --label "pays from bob's account" -- \
	-d "{\"from_account_id\":\"$bobs\",\"to_account_id\":\"$alices\",\"amount\":{\"currency_code\":\"EUR\",\"minor_units\":\"100\"},\"idempotency_key\":\"grpcurl-steal-$RANDOM$RANDOM\"}" \
	"$PAYMENTS_ADDR" "$PAYMENTS/CreatePayment"
finish
