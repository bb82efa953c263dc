#!/usr/bin/env bash
# Rejection path: a certificate with the serverAuth usage only, no clientAuth (alert
# bad_certificate).
# The TLS handshake fails, so no method is ever reached; WhoAmI, which any bank identity
# may call, shows that the certificate alone is the cause.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect "handshake rejected" as serveronly -- "$ACCOUNTS_ADDR" "$IDENTITY/WhoAmI"
finish
