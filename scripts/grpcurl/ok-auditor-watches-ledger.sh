#!/usr/bin/env bash
# Success path: the auditor streams the ledger; -max-time ends the endless stream.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

account=$(open_account spiffe://bank.local/customer/alice)
deposit "$account" 100
expect STREAMED as auditor --match '"sequence"' -- -max-time 2 -d '{"after_sequence":"0"}' "$ACCOUNTS_ADDR" "$ACCOUNTS/WatchLedger"
finish
