package telemetry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

// RevocationMetrics are the metrics of the CRLs a service enforces:
//
//	bank_crl_next_update_timestamp_seconds{issuer,issuer_serial}  nextUpdate of each CRL
//	bank_crl_number{issuer,issuer_serial}                          CRL number of each CRL
//	bank_crl_stale{issuer,issuer_serial}                           1 once past nextUpdate
//	bank_crl_rejected_total{reason}                                CRL sets refused
//
// The gauges are read from the CRL set in force at scrape time.
type RevocationMetrics struct {
	rejected *prometheus.CounterVec
	current  func() *tlsconfig.CRL
	now      func() time.Time

	mu     sync.Mutex
	logged map[string]int // CRL -> 1 stale, 2 past the limit, as last logged
}

// WatchCRLs registers the revocation metrics on m's registry; current returns the CRL
// set in force and now the clock staleness is judged by (the TLS source's). Call it once.
func (m *Metrics) WatchCRLs(current func() *tlsconfig.CRL, now func() time.Time) (*RevocationMetrics, error) {
	if current == nil || now == nil {
		return nil, errors.New("telemetry: WatchCRLs needs a CRL func and a clock")
	}
	r := &RevocationMetrics{rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bank_crl_rejected_total",
		Help: "CRL sets refused on load or reload, by reason (rollback, no_number, delta, issuing_distribution_point, untrusted_issuer, ...); the last good set stays in force.",
	}, []string{"reason"}), current: current, now: now}
	for _, reason := range tlsconfig.CRLRejectReasons() {
		r.rejected.WithLabelValues(reason)
	}
	labels := []string{"issuer", "issuer_serial"}
	c := &crlCollector{
		current: current,
		now:     now,
		next: prometheus.NewDesc("bank_crl_next_update_timestamp_seconds",
			"nextUpdate of each CRL in force (Unix seconds).", labels, nil),
		number: prometheus.NewDesc("bank_crl_number", "CRL number of each CRL in force.", labels, nil),
		stale: prometheus.NewDesc("bank_crl_stale",
			"1 when the CRL is past its nextUpdate (after --crl-max-staleness more, peers under its CA are refused), else 0.", labels, nil),
	}
	if err := m.reg.Register(r.rejected); err != nil {
		return nil, err
	}
	if err := m.reg.Register(c); err != nil {
		return nil, err
	}
	return r, nil
}

// ObserveCRLRejected counts a refused CRL set by tlsconfig.CRLRejectReason(err).
func (r *RevocationMetrics) ObserveCRLRejected(err error) {
	if r == nil || err == nil {
		return
	}
	r.rejected.WithLabelValues(tlsconfig.CRLRejectReason(err)).Inc()
}

type crlCollector struct {
	current             func() *tlsconfig.CRL
	now                 func() time.Time
	next, number, stale *prometheus.Desc
}

func (c *crlCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.next
	ch <- c.number
	ch <- c.stale
}

func (c *crlCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, l := range c.current().Lists() {
		issuer, serial := l.Issuer.Subject.String(), pki.SerialHex(l.Issuer.SerialNumber)
		stale := 0.0
		if now.After(l.NextUpdate) {
			stale = 1
		}
		number, _ := l.Number.Float64()
		ch <- prometheus.MustNewConstMetric(c.next, prometheus.GaugeValue, float64(l.NextUpdate.Unix()), issuer, serial)
		ch <- prometheus.MustNewConstMetric(c.number, prometheus.GaugeValue, number, issuer, serial)
		ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, stale, issuer, serial)
	}
}

// WatchMissingCRLs registers
//
//	bank_crl_missing{issuer,issuer_serial}  1 for a CA that has no CRL in the set, else 0
//
// with one series per CA of issuers (the CAs that may sign a CRL, tlsconfig's
// Source.CRLIssuers), read at scrape time together with current (the CRL set in force). A
// CA without a CRL is one whose certificates are either all refused (crl_missing) or never
// found revoked, depending on the service's --crl-require-all. Call it once.
func (m *Metrics) WatchMissingCRLs(issuers func() []*x509.Certificate, current func() *tlsconfig.CRL) error {
	if issuers == nil || current == nil {
		return errors.New("telemetry: WatchMissingCRLs needs an issuers func and a CRL func")
	}
	return m.reg.Register(&missingCRLCollector{
		issuers: issuers,
		current: current,
		desc: prometheus.NewDesc("bank_crl_missing",
			"1 when the CA has no CRL in the CRL bundle: peers under it are refused (crl_missing), or with --crl-require-all=false never found revoked; else 0.",
			[]string{"issuer", "issuer_serial"}, nil),
	})
}

type missingCRLCollector struct {
	issuers func() []*x509.Certificate
	current func() *tlsconfig.CRL
	desc    *prometheus.Desc
}

func (c *missingCRLCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *missingCRLCollector) Collect(ch chan<- prometheus.Metric) {
	crl := c.current()
	seen := make(map[[2]string]bool)
	for _, ca := range c.issuers() {
		key := [2]string{ca.Subject.String(), pki.SerialHex(ca.SerialNumber)}
		if seen[key] {
			continue // one series per CA, however many times it is configured
		}
		seen[key] = true
		missing := 0.0
		if crl.For(ca) == nil {
			missing = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, missing, key[0], key[1])
	}
}

// WithReadinessDetail adds a line to every /readyz answer, "name: " and what detail
// returns, when it returns something: a condition worth an operator's eye that does not
// make the service unready (a CRL past its nextUpdate).
func WithReadinessDetail(name string, detail func() string) ServerOption {
	return func(s *Server) { s.details = append(s.details, readyDetail{name: name, fn: detail}) }
}

type readyDetail struct {
	name string
	fn   func() string
}

// detailLines returns the non-empty details, one "name: text" line each.
func (s *Server) detailLines() string {
	var b strings.Builder
	for _, d := range s.details {
		if text := strings.TrimSpace(d.fn()); text != "" {
			b.WriteString("\n" + d.name + ": " + strings.ReplaceAll(text, "\n", "\n"+d.name+": "))
		}
	}
	return b.String()
}

// CheckCRLFreshness logs, for every CRL in force, a warning when it passes its nextUpdate
// and an error when it passes nextUpdate + maxStale (peers under its CA are refused from
// then on), once per CRL and state rather than at every check. It returns one line per
// CRL past its nextUpdate, for /readyz.
func (r *RevocationMetrics) CheckCRLFreshness(logger *slog.Logger, maxStale time.Duration) []string {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]int)
	var lines []string
	for _, l := range r.current().Lists() {
		if !now.After(l.NextUpdate) {
			continue
		}
		key := l.Issuer.Subject.String() + "|" + pki.SerialHex(l.Issuer.SerialNumber) + "|" + l.Number.String()
		limit := l.NextUpdate.Add(maxStale)
		state, level, msg, line := 1, slog.LevelWarn, "CRL past its nextUpdate: publish a fresh one", "past nextUpdate"
		if now.After(limit) {
			state, level = 2, slog.LevelError
			msg = "CRL past its nextUpdate beyond --crl-max-staleness: refusing peers under this CA"
			line = "too stale, refusing peers under this CA"
		}
		seen[key] = state
		if r.logged[key] != state {
			logger.Log(context.Background(), level, msg, "issuer", l.Issuer.Subject.String(),
				"crl_number", l.Number.String(), "next_update", l.NextUpdate, "fails_closed_at", limit)
		}
		lines = append(lines, fmt.Sprintf("CRL of %s (number %s) %s since %s; fails closed at %s",
			l.Issuer.Subject, l.Number, line, l.NextUpdate.UTC().Format(time.RFC3339), limit.UTC().Format(time.RFC3339)))
	}
	r.logged = seen
	return lines
}
