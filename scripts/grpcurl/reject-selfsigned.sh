#!/usr/bin/env bash
# Rejection path: a self-signed certificate; like rogue, grpcurl leaves it out and the
# server sees none.
# The TLS handshake fails, so no method is ever reached; WhoAmI, which any bank identity
# may call, shows that the certificate alone is the cause.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect "handshake rejected" as selfsigned -- "$ACCOUNTS_ADDR" "$IDENTITY/WhoAmI"
finish
