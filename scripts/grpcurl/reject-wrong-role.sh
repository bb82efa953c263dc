#!/usr/bin/env bash
# Rejection path: known identities calling methods their roles do not grant.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect PermissionDenied as alice --label "customer opens an account" -- \
	-d '{"owner":"spiffe://bank.local/customer/alice","currency":"EUR"}' "$ACCOUNTS_ADDR" "$ACCOUNTS/OpenAccount"
expect PermissionDenied as auditor --label "auditor deposits" -- \
	-d '{"account_id":"acc_x","amount":{"currency_code":"EUR","minor_units":"100"},"idempotency_key":"grpcurl-auditor"}' "$ACCOUNTS_ADDR" "$ACCOUNTS/Deposit"
expect PermissionDenied as intern --label "unmapped identity lists" -- "$ACCOUNTS_ADDR" "$ACCOUNTS/ListAccounts"
finish
