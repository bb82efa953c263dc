package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"mtlsbank/internal/pki"
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
	if cfg.CRLRequired() {
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

// Warnings about CRL coverage, also the /readyz lines.
const (
	msgNoCRL = "no CRL configured: revoked certificates are accepted"
	// What follows from a CA without a CRL, with and without --crl-require-all.
	crlMissingRefused   = "refusing peers under it (crl_missing)"
	crlMissingUnchecked = "its certificates are not checked for revocation (--crl-require-all=false)"
)

// msgWorkloadAPIRevocation says what revocation is with the identity from the SPIFFE
// Workload API, at the start and in /readyz.
const msgWorkloadAPIRevocation = "identity from the SPIFFE Workload API: no CRL; revocation is the short SVID lifetime " +
	"(a workload whose registration entry is deleted gets no new SVID and is refused once its SVID expires)"

// watchRevocation registers the CRL metrics, the freshness log task and the /readyz
// detail, and warns of what revocation does not cover. Called by New once the source is
// loaded. With the Workload API there is no CRL: it says so, once and in /readyz.
func (r *Runtime) watchRevocation() error {
	if r.cfg.UsesWorkloadAPI() {
		r.logger.Info(msgWorkloadAPIRevocation, "endpoint", r.cfg.SPIFFEEndpoint)
		r.checks = append(r.checks, telemetry.WithReadinessDetail("crl", func() string { return msgWorkloadAPIRevocation }))
		return nil
	}
	m, err := r.metrics.WatchCRLs(r.src.CRL, r.src.Now)
	if err != nil {
		return err
	}
	r.revocation = m
	if err := r.metrics.WatchMissingCRLs(r.src.CRLIssuers, r.src.CRL); err != nil {
		return err
	}
	if r.cfg.CRL == "" {
		r.logger.Warn(msgNoCRL, "hint", "set --crl to a bundle with the CRL of every CA (certgen writes certs/dev/crl.pem)")
	}
	r.reportMissingCRLs()
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
		return strings.Join(append(r.missingCRLLines(), r.CheckCRLFreshness()...), "\n")
	}))
	return nil
}

// reportMissingCRLs logs a warning for every CA that may sign a CRL (the anchors, the
// intermediates configured or in the service's own chain) and has none in the set, saying
// whether its peers are refused or go unchecked. New calls it at start and reloaded after
// every reload of the TLS material, since a new bundle, intermediates file or CRL bundle
// can leave a CA uncovered. Without --crl the start warned once already.
func (r *Runtime) reportMissingCRLs() {
	if r.cfg.CRL == "" {
		return
	}
	msg := "CA has no CRL in --crl: " + crlMissingUnchecked
	if r.src.CRLRequired() {
		msg = "CA has no CRL in --crl: " + crlMissingRefused
	}
	for _, ca := range r.src.MissingCRLs() {
		r.logger.Warn(msg, "issuer", ca.Subject.String(), "issuer_serial", pki.SerialHex(ca.SerialNumber), "crl", r.cfg.CRL)
	}
}

// missingCRLLines returns the /readyz lines of reportMissingCRLs: one per CA without a
// CRL, or one saying revocation is off.
func (r *Runtime) missingCRLLines() []string {
	if r.cfg.CRL == "" {
		return []string{msgNoCRL}
	}
	what := crlMissingUnchecked
	if r.src.CRLRequired() {
		what = crlMissingRefused
	}
	var lines []string
	for _, ca := range r.src.MissingCRLs() {
		lines = append(lines, fmt.Sprintf("no CRL of %s (serial %s) in %s: %s", ca.Subject, pki.SerialHex(ca.SerialNumber), r.cfg.CRL, what))
	}
	return lines
}

// CheckCRLFreshness logs a CRL that became stale, or too stale, since the last check and
// returns one line per CRL past its nextUpdate (what /readyz shows).
func (r *Runtime) CheckCRLFreshness() []string {
	if r.revocation == nil {
		return nil // no CRL: the identity comes from the Workload API
	}
	return r.revocation.CheckCRLFreshness(r.logger, r.cfg.CRLMaxStaleness)
}

// crlReload is the reload Func of the CRL group: a refused set is also counted in
// bank_crl_rejected_total{reason}.
func (r *Runtime) crlReload() reload.Func {
	return reload.CRL(r.src, r.revocation.ObserveCRLRejected)
}
