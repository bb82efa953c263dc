package payments

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// accountsServiceConfig retries Transfer, the one call payments makes (idempotent
// thanks to its key), when the accounts service is unavailable, with exponential
// backoff. Only UNAVAILABLE is retried: every other code is an answer.
const accountsServiceConfig = `{
  "methodConfig": [{
    "name": [{"service": "bank.accounts.v1.AccountsService", "method": "Transfer"}],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// DialAccounts returns the one long-lived connection the payments service keeps to
// the accounts service at target. creds must be mutual TLS with the payments
// certificate that also checks the server's SPIFFE ID (tlsconfig.ClientCredentials
// with tlsconfig.WithServerID). The connection retries idempotent calls on
// UNAVAILABLE, sends keepalive pings while calls are in flight, and reconnects
// with a backoff capped at a few seconds, so that a restarted accounts service is
// found again quickly. extra options (a test's dialer) come last and win.
func DialAccounts(target string, creds credentials.TransportCredentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
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
	cc, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("accounts client for %s: %w", target, err)
	}
	return cc, nil
}
