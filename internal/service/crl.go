package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"mtlsbank/internal/reload"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
)

// GroupIntermediates is the reload group of the --intermediates file.
const GroupIntermediates = "intermediates"

// crlFreshnessInterval is how often the CRLs' nextUpdate is checked for the log.
const crlFreshnessInterval = time.Minute

// intermediatesToLoad returns the intermediates file to load at start: cfg.Intermediates,
// or "" when that file does not exist. The file is optional (peers send their own
// intermediate; it is needed for the CRLs of intermediates the service's own chain does
// not carry, and those then fail to verify with a clear error), and a dev PKI made before
// it existed has none. It stays watched: once created, it is loaded.
func (r *Runtime) intermediatesToLoad() string {
	if r.cfg.Intermediates == "" {
		return ""
	}
	if _, err := os.Stat(r.cfg.Intermediates); errors.Is(err, fs.ErrNotExist) {
		r.logger.Warn("intermediates file missing: using only the intermediates of the CA bundle and of the chains", "file", r.cfg.Intermediates)
		return ""
	}
	return r.cfg.Intermediates
}

// sourceOptions are the TLS source options of cfg: the CRL freshness limit, and, with a
// CRL, the history that refuses an older CRL across restarts.
func sourceOptions(cfg Config) ([]tlsconfig.SourceOption, error) {
	opts := []tlsconfig.SourceOption{tlsconfig.WithCRLMaxStaleness(cfg.CRLMaxStaleness)}
	if cfg.CRLRequireAll {
		opts = append(opts, tlsconfig.WithCRLRequired())
	}
	if cfg.CRL == "" {
		return opts, nil
	}
	h, err := tlsconfig.LoadCRLHistory(cfg.CRLStatePath())
	if err != nil {
		return nil, fmt.Errorf("--crl-state: %w", err)
	}
	return append(opts, tlsconfig.WithCRLHistory(h)), nil
}

// watchRevocation registers the CRL metrics, the freshness log task and the /readyz
// detail. Called by New once the source is loaded.
func (r *Runtime) watchRevocation() error {
	m, err := r.metrics.WatchCRLs(r.src.CRL, r.src.Now)
	if err != nil {
		return err
	}
	r.revocation = m
	r.background = append(r.background, func(ctx context.Context) {
		t := time.NewTicker(crlFreshnessInterval)
		defer t.Stop()
		for {
			r.CheckCRLFreshness()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	r.checks = append(r.checks, telemetry.WithReadinessDetail("crl", func() string {
		return strings.Join(r.CheckCRLFreshness(), "\n")
	}))
	return nil
}

// CheckCRLFreshness logs a CRL that became stale, or too stale, since the last check and
// returns one line per CRL past its nextUpdate (what /readyz shows).
func (r *Runtime) CheckCRLFreshness() []string {
	return r.revocation.CheckCRLFreshness(r.logger, r.cfg.CRLMaxStaleness)
}

// crlReload is the reload Func of the CRL group: a refused set is also counted in
// bank_crl_rejected_total{reason}.
func (r *Runtime) crlReload() reload.Func {
	return reload.CRL(r.src, r.revocation.ObserveCRLRejected)
}
