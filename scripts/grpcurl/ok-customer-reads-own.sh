#!/usr/bin/env bash
# Success path: alice reads her own account and its balance.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

account=$(open_account spiffe://bank.local/customer/alice)
deposit "$account" 4200
expect OK as alice --match '"4200"' -- -d "{\"id\":\"$account\"}" "$ACCOUNTS_ADDR" "$ACCOUNTS/GetAccount"
finish
