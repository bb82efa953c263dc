package telemetry

import (
	"context"
	"log/slog"
	"time"

	"mtlsbank/internal/pki"
)

// Defaults of RunExpiryWarnings, for the mains' flags.
const (
	// DefaultExpiryThreshold is how close to expiry a certificate starts being warned about.
	DefaultExpiryThreshold = 7 * 24 * time.Hour
	// DefaultExpiryCheckInterval is how often RunExpiryWarnings checks.
	DefaultExpiryCheckInterval = time.Hour
)

// CheckExpiry logs, for every certificate added with WatchCertificate, a warning if it
// expires within threshold and an error if it has expired. It returns how many it logged.
func (m *Metrics) CheckExpiry(logger *slog.Logger, threshold time.Duration) int {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := m.now()
	n := 0
	for _, w := range m.expiry.snapshot() {
		cert := w.current()
		if cert == nil {
			continue
		}
		left := cert.NotAfter.Sub(now)
		if left > threshold {
			continue
		}
		level, msg := slog.LevelWarn, "certificate expires soon"
		if left <= 0 {
			level, msg = slog.LevelError, "certificate has expired"
		}
		logger.Log(context.Background(), level, msg,
			"name", w.name, "spiffe_id", spiffeID(cert), "serial", pki.SerialHex(cert.SerialNumber),
			"not_after", cert.NotAfter, "remaining", left.Round(time.Second))
		n++
	}
	return n
}

// RunExpiryWarnings runs CheckExpiry now and then every interval until ctx ends.
func (m *Metrics) RunExpiryWarnings(ctx context.Context, logger *slog.Logger, threshold, interval time.Duration) {
	m.CheckExpiry(logger, threshold)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.CheckExpiry(logger, threshold)
		}
	}
}
