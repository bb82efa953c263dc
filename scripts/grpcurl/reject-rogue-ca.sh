#!/usr/bin/env bash
# Rejection path: a certificate from another CA (rogue-ca.crt). grpcurl, like crypto/tls,
# does not even send a certificate the server's CA list does not cover, so the server sees
# none.
# The TLS handshake fails, so no method is ever reached; WhoAmI, which any bank identity
# may call, shows that the certificate alone is the cause.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

expect "handshake rejected" as rogue -- "$ACCOUNTS_ADDR" "$IDENTITY/WhoAmI"
finish
