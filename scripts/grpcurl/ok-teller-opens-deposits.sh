#!/usr/bin/env bash
# Success path: a teller opens an account for alice and deposits 25.00 EUR into it.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect OK as teller --label "open account" --match spiffe://bank.local/customer/alice -- \
	-d '{"owner":"spiffe://bank.local/customer/alice","currency":"EUR","display_name":"grpcurl demo"}' \
	"$ACCOUNTS_ADDR" "$ACCOUNTS/OpenAccount"
account=$(json_field id <<<"$LAST_OUTPUT")
expect OK as teller --label "deposit 25.00 EUR" --match TRANSACTION_KIND_DEPOSIT -- \
	-d "{\"account_id\":\"$account\",\"amount\":{\"currency_code\":\"EUR\",\"minor_units\":\"2500\"},\"idempotency_key\":\"grpcurl-deposit-$RANDOM$RANDOM\"}" \
	"$ACCOUNTS_ADDR" "$ACCOUNTS/Deposit"
finish
