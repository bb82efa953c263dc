package telemetry_test

import (
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"

	"mtlsbank/internal/telemetry"
)

// TestSVIDMetrics: the expiry follows the SVID presented, and rotations and Workload API
// errors are counted from zero.
func TestSVIDMetrics(t *testing.T) {
	m := telemetry.NewMetrics()
	var cur atomic.Pointer[x509.Certificate]
	first := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cur.Store(&x509.Certificate{NotAfter: first})
	s, err := m.WatchSVID(cur.Load)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WatchSVID(cur.Load); err == nil {
		t.Fatal("a second WatchSVID registered the same metrics twice")
	}
	_, base := serve(t, m)
	fams := scrape(t, base)
	for name, want := range map[string]float64{
		"bank_svid_expiry_timestamp_seconds": float64(first.Unix()),
		"bank_svid_rotations_total":          0,
		"bank_workload_api_errors_total":     0,
	} {
		if got, ok := value(fams, name, nil); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}

	second := first.Add(time.Minute)
	cur.Store(&x509.Certificate{NotAfter: second})
	s.ObserveRotation()
	s.ObserveWorkloadAPIError()
	s.ObserveWorkloadAPIError()
	fams = scrape(t, base)
	for name, want := range map[string]float64{
		"bank_svid_expiry_timestamp_seconds": float64(second.Unix()),
		"bank_svid_rotations_total":          1,
		"bank_workload_api_errors_total":     2,
	} {
		if got, _ := value(fams, name, nil); got != want {
			t.Errorf("after a rotation: %s = %v, want %v", name, got, want)
		}
	}
}
