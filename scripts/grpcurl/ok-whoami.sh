#!/usr/bin/env bash
# Success path: WhoAmI tells any bank identity how each service sees it.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect OK as alice --label accounts --match spiffe://bank.local/customer/alice -- "$ACCOUNTS_ADDR" "$IDENTITY/WhoAmI"
expect OK as teller --label payments --match spiffe://bank.local/teller/tina -- "$PAYMENTS_ADDR" "$IDENTITY/WhoAmI"
finish
