package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/payments"
	"mtlsbank/internal/roundrobin"
	"mtlsbank/internal/service"
)

// config is the payments service's deployed configuration: the flags every service
// shares, and those of payments. Each flag falls back to the environment variable
// BANK_<FLAG> (upper snake case), then to its default.
type config struct {
	service.Config

	AccountsAddr       string          // accounts replicas: host:port, a DNS name, or a comma-separated list
	AccountsServerName string          // TLS server name the accounts certificate must carry
	AccountsSPIFFEID   spiffeid.ID     // SPIFFE ID the accounts certificate must carry
	CustomerLimits     payments.Limits // per-payment limit of customers, per currency
	CustomerDaily      payments.Limits // rolling 24-hour limit of each customer, per currency
	RecoveryInterval   time.Duration   // how often pending payments are retried
	CallTimeout        time.Duration   // deadline of one call to accounts
}

// flagDefaults are the payments service's addresses and file names.
func flagDefaults() service.Defaults {
	return service.Defaults{Name: "payments", Listen: "localhost:50052", MetricsListen: "localhost:9092"}
}

// parseConfig fills the configuration from args, then the environment (getenv, os.Getenv
// in production), then the defaults, and validates it.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("payments", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs, flagDefaults())
	cfg.AccountsSPIFFEID = spiffeid.RequireFromString("spiffe://bank.local/service/accounts")
	cfg.CustomerLimits, _ = payments.ParseLimits(payments.DefaultCustomerLimits)     // a constant, tested
	cfg.CustomerDaily, _ = payments.ParseLimits(payments.DefaultCustomerDailyLimits) // likewise
	fs.StringVar(&cfg.AccountsAddr, "accounts-addr", "localhost:50051", "address of the accounts service: host:port (every address a DNS name resolves to is used), or a comma-separated list of replicas host:port,host:port; calls go round robin and a call that reached a replica going down is retried on another")
	fs.StringVar(&cfg.AccountsServerName, "accounts-server-name", "localhost", "TLS server name the accounts certificate must carry")
	fs.Func("accounts-spiffe-id", "SPIFFE ID the accounts service must present (default "+cfg.AccountsSPIFFEID.String()+")",
		func(s string) (err error) {
			cfg.AccountsSPIFFEID, err = spiffeid.FromString(s)
			return err
		})
	fs.Var(&cfg.CustomerLimits, "customer-limit", "per-payment limit of customers, CODE:AMOUNT,...; other currencies are refused to customers")
	fs.Var(&cfg.CustomerDaily, "customer-daily-limit", "what each customer may order per currency over any 24 hours (PENDING and COMPLETED payments), CODE:AMOUNT,...; other currencies are refused to customers")
	fs.DurationVar(&cfg.RecoveryInterval, "recovery-interval", payments.DefaultRecoveryInterval, "how often pending payments are retried")
	fs.DurationVar(&cfg.CallTimeout, "accounts-timeout", payments.DefaultCallTimeout, "deadline of one call to the accounts service, retries included")
	if err := service.ParseFlags(fs, args, getenv); err != nil {
		return config{}, err
	}
	return cfg, cfg.validate()
}

func (c config) validate() error {
	errs := []error{c.Config.Validate()}
	if c.AccountsAddr == "" {
		errs = append(errs, errors.New("--accounts-addr must not be empty"))
	} else if _, _, err := roundrobin.Target(c.AccountsAddr); err != nil {
		errs = append(errs, fmt.Errorf("--accounts-addr: %w", err))
	}
	if c.AccountsServerName == "" {
		errs = append(errs, errors.New("--accounts-server-name must not be empty"))
	}
	for _, cur := range c.CustomerLimits.Currencies() {
		if _, ok := c.CustomerDaily.Max(cur); !ok {
			errs = append(errs, fmt.Errorf("--customer-limit allows %s but --customer-daily-limit has no %s limit (customers could not pay in it)", cur, cur))
		}
	}
	if c.RecoveryInterval <= 0 {
		errs = append(errs, fmt.Errorf("--recovery-interval %s must be positive", c.RecoveryInterval))
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--accounts-timeout %s must be positive", c.CallTimeout))
	}
	return errors.Join(errs...)
}
