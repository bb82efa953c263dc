#!/usr/bin/env bash
# Success path: server reflection lists and describes the API to any bank identity.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect OK as teller --label "list accounts" --match "$ACCOUNTS" -- "$ACCOUNTS_ADDR" list
expect OK as teller --label "describe AccountsService" --match "rpc OpenAccount" -- "$ACCOUNTS_ADDR" describe "$ACCOUNTS"
expect OK as alice --label "list payments" --match "$PAYMENTS" -- "$PAYMENTS_ADDR" list
finish
