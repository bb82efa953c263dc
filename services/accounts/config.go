package main

import (
	"flag"
	"io"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/service"
)

// flagDefaults are the accounts service's defaults: its addresses, and payments exempt
// from the rate limit because it limits end users at its own edge and calls accounts
// on their behalf.
func flagDefaults() service.Defaults {
	return service.Defaults{
		Name:            "accounts",
		Listen:          "localhost:50051",
		MetricsListen:   "localhost:9091",
		RateLimitExempt: []spiffeid.ID{spiffeid.RequireFromString("spiffe://bank.local/service/payments")},
	}
}

// parseConfig fills the configuration from args, then the environment (getenv, os.Getenv
// in production: BANK_<FLAG>), then the defaults, and validates it.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (service.Config, error) {
	var cfg service.Config
	fs := flag.NewFlagSet("accounts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs, flagDefaults())
	if err := service.ParseFlags(fs, args, getenv); err != nil {
		return service.Config{}, err
	}
	return cfg, cfg.Validate()
}
