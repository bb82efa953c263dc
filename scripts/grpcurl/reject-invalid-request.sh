#!/usr/bin/env bash
# Rejection path: requests that break the validation rules of their proto, refused with
# InvalidArgument before any handler runs; the details name each field at fault
# (google.rpc.BadRequest) and the reason (google.rpc.ErrorInfo).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

alices=$(open_account spiffe://bank.local/customer/alice)
bobs=$(open_account spiffe://bank.local/customer/bob)
expect InvalidArgument as teller --label "malformed account id" --match MALFORMED_ID -- \
	-d '{"id":"acc_x"}' "$ACCOUNTS_ADDR" "$ACCOUNTS/GetAccount"
expect InvalidArgument as alice --label "zero amount, key with a space" --match INVALID_AMOUNT -- \
	-d "{\"from_account_id\":\"$alices\",\"to_account_id\":\"$bobs\",\"amount\":{\"currency_code\":\"EUR\",\"minor_units\":\"0\"},\"idempotency_key\":\"two words\"}" \
	"$PAYMENTS_ADDR" "$PAYMENTS/CreatePayment"
finish
