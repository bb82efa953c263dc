package payments

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"mtlsbank/internal/roundrobin"
)

// accountsServiceConfig spreads calls round robin over the accounts replicas
// (roundrobin.ServiceConfig) and retries Transfer, the one call payments makes
// (idempotent thanks to its key), with exponential backoff, when the replica it
// reached was unavailable (down, dying, or shutting down: the call is retried on
// the next ready replica) or answered ABORTED (the same key at the same moment:
// the ledger asks for a retry with the same key). Health checks (readiness of the
// accounts replicas) are retried alike: they change nothing. Every other code is
// an answer.
const accountsServiceConfig = `{
  ` + roundrobin.ServiceConfig + `,
  "methodConfig": [{
    "name": [
      {"service": "bank.accounts.v1.AccountsService", "method": "Transfer"},
      {"service": "grpc.health.v1.Health", "method": "Check"}
    ],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE", "ABORTED"]
    }
  }]
}`

// DialAccounts returns the one long-lived connection the payments service keeps to
// the accounts service at addrs: one address, a DNS name with several addresses, or
// a comma-separated list of replicas (see roundrobin.Target), each reached through
// its own subchannel and used in turn. creds must be mutual TLS with the payments
// certificate that also checks the server's SPIFFE ID (tlsconfig.ClientCredentials
// with tlsconfig.WithServerID): every replica's certificate is checked, on every
// connection. The connection retries idempotent calls on UNAVAILABLE and ABORTED
// (on another replica when one goes away mid-call), sends keepalive pings while
// calls are in flight, and reconnects with a backoff capped at a few seconds, so
// that a restarted replica is found again quickly. extra options (a test's dialer)
// come last and win.
func DialAccounts(addrs string, creds credentials.TransportCredentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	target, targetOpts, err := roundrobin.Target(addrs)
	if err != nil {
		return nil, fmt.Errorf("accounts address: %w", err)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(accountsServiceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    time.Minute,
			Timeout: 10 * time.Second,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   3 * time.Second,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	opts = append(opts, targetOpts...)
	cc, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("accounts client for %s: %w", addrs, err)
	}
	return cc, nil
}
