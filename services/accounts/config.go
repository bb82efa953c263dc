package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// config is the service's deployed configuration: each field is a flag, and each flag
// falls back to the environment variable BANK_<FLAG> (upper snake case), then a default.
type config struct {
	Listen        string // gRPC listen address
	MetricsListen string // HTTP metrics/health listen address (served from a later issue)
	DB            string // SQLite database file
	Cert          string // service certificate chain (PEM)
	Key           string // service private key (PEM)
	CA            string // trust bundle (PEM)
	CRL           string // certificate revocation list (PEM); empty: none
	Policy        string // authorization policy file; empty: the embedded default
}

// parseConfig fills a config from args and getenv (os.Getenv in production).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("accounts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, name, def, usage string) {
		env := "BANK_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v := getenv(env); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+env+")")
	}
	str(&cfg.Listen, "listen", "localhost:50051", "gRPC listen address")
	str(&cfg.MetricsListen, "metrics-listen", "localhost:9091", "metrics and health HTTP listen address")
	str(&cfg.DB, "db", "data/accounts.db", "SQLite database file")
	str(&cfg.Cert, "cert", "certs/dev/accounts.crt", "service certificate chain (PEM)")
	str(&cfg.Key, "key", "certs/dev/accounts.key", "service private key (PEM)")
	str(&cfg.CA, "ca", "certs/dev/ca.crt", "CA trust bundle (PEM)")
	str(&cfg.CRL, "crl", "certs/dev/crl.pem", "certificate revocation list (PEM); empty for none")
	str(&cfg.Policy, "policy", "", "authorization policy YAML; empty for the embedded default")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return cfg, cfg.validate()
}

func (c config) validate() error {
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"listen", c.Listen}, {"metrics-listen", c.MetricsListen}, {"db", c.DB},
		{"cert", c.Cert}, {"key", c.Key}, {"ca", c.CA},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("--%s must not be empty", f.name))
		}
	}
	return errors.Join(errs...)
}
