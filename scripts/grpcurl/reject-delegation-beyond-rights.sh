#!/usr/bin/env bash
# Rejection path: the payments service's own certificate, which may delegate Transfer,
# names an end user whose rights do not cover the transfer: the read-only auditor, an
# identity the policy does not know, and alice on bob's account. The end user's on_behalf
# rule bounds what a delegate may do for it; the same certificate for alice, from her own
# account, goes through.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

bobs=$(open_account spiffe://bank.local/customer/bob)
alices=$(open_account spiffe://bank.local/customer/alice)
deposit "$bobs" 5000
deposit "$alices" 5000
# transfer LABEL FROM TO: the request body.
transfer() {
	echo "{\"from_account_id\":\"$2\",\"to_account_id\":\"$3\",\"amount\":{\"currency_code\":\"EUR\",\"minor_units\":\"100\"},\"idempotency_key\":\"grpcurl-obo-$1-$RANDOM$RANDOM\"}"
}
for who in auditor/audrey intern/ivan customer/alice; do
	expect PermissionDenied as payments --label "transfer from bob's account for $who" -- \
		-rpc-header "x-bank-on-behalf-of: spiffe://bank.local/$who" \
		-d "$(transfer "${who%%/*}" "$bobs" "$alices")" "$ACCOUNTS_ADDR" "$ACCOUNTS/Transfer"
done
expect OK as payments --label "transfer from alice's account for alice" -- \
	-rpc-header "x-bank-on-behalf-of: spiffe://bank.local/customer/alice" \
	-d "$(transfer alice "$alices" "$bobs")" "$ACCOUNTS_ADDR" "$ACCOUNTS/Transfer"
finish
