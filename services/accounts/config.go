package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/service"
)

// config is the accounts service's deployed configuration: the flags every service
// shares, and the ledger's money limits. Each flag falls back to the environment
// variable BANK_<FLAG> (upper snake case), then to its default.
type config struct {
	service.Config

	MaxAmount ledger.CurrencyLimits // largest amount of one deposit, withdrawal or transfer
	MaxSupply ledger.CurrencyLimits // most money of a currency all customer accounts hold together
}

// ledgerOptions are the ledger options the configuration sets.
func (c config) ledgerOptions() []ledger.Option {
	return []ledger.Option{ledger.WithMaxAmount(c.MaxAmount), ledger.WithMaxSupply(c.MaxSupply)}
}

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
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{MaxAmount: ledger.DefaultMaxAmounts(), MaxSupply: ledger.DefaultMaxSupplies()}
	fs := flag.NewFlagSet("accounts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs, flagDefaults())
	fs.Var(&cfg.MaxAmount, "max-amount", "largest amount of one deposit, withdrawal or transfer, whoever asks: "+
		"CODE:AMOUNT in major units (EUR:1000000.00), comma-separated, and *:N whole major units for every other currency")
	fs.Var(&cfg.MaxSupply, "max-supply", "most money of a currency that all customer accounts may hold together (deposits beyond are refused; "+
		"withdrawals and transfers still work): same form as --max-amount; at most 10^18 minor units")
	if err := service.ParseFlags(fs, args, getenv); err != nil {
		return config{}, err
	}
	return cfg, cfg.validate()
}

// validate reports every value that cannot work, each naming its flag.
func (c config) validate() error {
	errs := []error{c.Config.Validate()}
	if err := ledger.CheckLimits(c.MaxAmount, c.MaxSupply); err != nil {
		errs = append(errs, fmt.Errorf("--max-amount and --max-supply: %w", err))
	}
	return errors.Join(errs...)
}
