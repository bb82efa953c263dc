#!/usr/bin/env bash
# Success path: alice pays bob 12.50 EUR through the payments service, which moves the
# money by calling accounts with its own certificate on alice's behalf.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

from=$(open_account spiffe://bank.local/customer/alice)
to=$(open_account spiffe://bank.local/customer/bob)
deposit "$from" 10000
expect OK as alice --match PAYMENT_STATUS_COMPLETED -- \
	-d "{\"from_account_id\":\"$from\",\"to_account_id\":\"$to\",\"amount\":{\"currency_code\":\"EUR\",\"minor_units\":\"1250\"},\"idempotency_key\":\"grpcurl-pay-$RANDOM$RANDOM\",\"memo\":\"grpcurl demo\"}" \
	"$PAYMENTS_ADDR" "$PAYMENTS/CreatePayment"
finish
