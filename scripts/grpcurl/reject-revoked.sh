#!/usr/bin/env bash
# Rejection path: a certificate listed in crl.pem (alert bad_certificate; the server's log
# says revoked).
# The TLS handshake fails, so no method is ever reached; WhoAmI, which any bank identity
# may call, shows that the certificate alone is the cause.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect "handshake rejected" as revoked -- "$ACCOUNTS_ADDR" "$IDENTITY/WhoAmI"
finish
