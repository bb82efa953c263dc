package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stores whose group commits the services export (CommitObserver).
const (
	StoreLedger   = "ledger"   // the accounts service's ledger (SQLite or PostgreSQL)
	StorePayments = "payments" // the payments service's SQLite store
	StoreAudit    = "audit"    // a service's audit file
)

// commitMetrics are the group commits of a service's stores: what a durable call waits
// for once its write is taken, and the first thing to move when the disk's fsyncs slow
// down (docs/benchmarks.md, session 6).
type commitMetrics struct {
	duration *prometheus.HistogramVec
	requests *prometheus.HistogramVec
}

func newCommitMetrics() *commitMetrics {
	return &commitMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bank_commit_duration_seconds",
			Help:    "Time of one group commit, by store (ledger, payments, audit): the batch's statements or records, the commit and its fsync.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024},
		}, []string{"store"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bank_commit_requests",
			Help:    "Requests (writes, or audit records) sharing one group commit, by store.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 to 512
		}, []string{"store"}),
	}
}

// CommitObserver returns the function a store's group commit calls after each batch
// (groupcommit.WithObserver, through the stores' WithCommitObserver options) to
// record it under store. The series are resolved here, once.
func (m *Metrics) CommitObserver(store string) func(requests int, took time.Duration) {
	duration := m.commits.duration.WithLabelValues(store)
	requests := m.commits.requests.WithLabelValues(store)
	return func(n int, took time.Duration) {
		duration.Observe(took.Seconds())
		requests.Observe(float64(n))
	}
}
