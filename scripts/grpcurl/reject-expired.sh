#!/usr/bin/env bash
# Rejection path: an expired certificate (alert certificate_expired).
# The TLS handshake fails, so no method is ever reached; WhoAmI, which any bank identity
# may call, shows that the certificate alone is the cause.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect "handshake rejected" as expired -- "$ACCOUNTS_ADDR" "$IDENTITY/WhoAmI"
finish
