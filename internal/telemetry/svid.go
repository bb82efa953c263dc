package telemetry

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// SVIDMetrics are the metrics of an identity taken from the SPIFFE Workload API.
type SVIDMetrics struct {
	rotations prometheus.Counter
	errors    prometheus.Counter
}

// WatchSVID registers the metrics of an identity from the SPIFFE Workload API:
// bank_svid_expiry_timestamp_seconds (the NotAfter of the SVID current returns, read at
// scrape time), bank_svid_rotations_total and bank_workload_api_errors_total, counted
// through the returned SVIDMetrics. Call it once.
func (m *Metrics) WatchSVID(current func() *x509.Certificate) (*SVIDMetrics, error) {
	if current == nil {
		return nil, errors.New("telemetry: WatchSVID needs a func")
	}
	s := &SVIDMetrics{
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bank_svid_rotations_total",
			Help: "X.509-SVIDs taken from the SPIFFE Workload API in place of the previous one (rotations).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bank_workload_api_errors_total",
			Help: "Failed exchanges with the SPIFFE Workload API since the first SVID (watch broken, no identity issued, update refused); the SVID in hand stays in use until it expires.",
		}),
	}
	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bank_svid_expiry_timestamp_seconds",
		Help: "NotAfter of the X.509-SVID presented now (Unix time), read at scrape time.",
	}, func() float64 {
		if c := current(); c != nil {
			return float64(c.NotAfter.Unix())
		}
		return 0
	})
	for _, c := range []prometheus.Collector{s.rotations, s.errors, expiry} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("telemetry: WatchSVID: %w", err)
		}
	}
	return s, nil
}

// ObserveRotation counts a rotation of the SVID.
func (s *SVIDMetrics) ObserveRotation() { s.rotations.Inc() }

// ObserveWorkloadAPIError counts a failed exchange with the Workload API.
func (s *SVIDMetrics) ObserveWorkloadAPIError() { s.errors.Inc() }
