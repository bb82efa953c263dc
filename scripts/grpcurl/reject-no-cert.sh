#!/usr/bin/env bash
# Rejection path: no client certificate: the server requires one (alert
# certificate_required).
# The TLS handshake fails, so no method is ever reached; WhoAmI, which any bank identity
# may call, shows that the certificate alone is the cause.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect "handshake rejected" as none -- "$ACCOUNTS_ADDR" "$IDENTITY/WhoAmI"
finish
