#!/usr/bin/env bash
# Rejection path: a certificate that is not valid yet (crypto/tls sends
# certificate_expired for both).
# The TLS handshake fails, so no method is ever reached; WhoAmI, which any bank identity
# may call, shows that the certificate alone is the cause.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect "handshake rejected" as notyet -- "$ACCOUNTS_ADDR" "$IDENTITY/WhoAmI"
finish
