package service

import (
	"github.com/prometheus/client_golang/prometheus"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/telemetry"
)

// WithAuditOptions adds options to the audit sink the runtime opens (tests: an injected
// syncer).
func WithAuditOptions(opts ...auditlog.Option) Option {
	return func(o *options) { o.auditOptions = append(o.auditOptions, opts...) }
}

// openAudit opens the audit trail of cfg and registers its metrics. The runtime closes
// it last, after the server has drained and what Setup opened is closed, so that the
// records of the last calls are in it and a final checkpoint signs them.
func (r *Runtime) openAudit(extra []auditlog.Option) (*auditlog.Sink, error) {
	key, err := auditlog.LoadSigningKey(r.cfg.AuditKey)
	if err != nil {
		return nil, err
	}
	opts := append([]auditlog.Option{
		auditlog.WithFlushInterval(r.cfg.AuditFlushInterval),
		auditlog.WithCheckpoints(r.cfg.AuditCheckpointInterval, auditlog.DefaultCheckpointRecords),
		auditlog.WithMaxFileSize(int64(r.cfg.AuditMaxFileSize)),
		auditlog.WithLogger(r.logger),
		auditlog.WithCommitObserver(r.metrics.CommitObserver(telemetry.StoreAudit)),
	}, extra...)
	sink, err := auditlog.Open(r.cfg.AuditFilePath(), r.svc.Name, key, opts...)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, sink.Close)
	counter := func(name, help string, v func(auditlog.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(sink.Stats())) })
	}
	r.metrics.Registry().MustRegister(
		counter("bank_audit_records_total", "Audit records written and synced to the audit file.",
			func(s auditlog.Stats) uint64 { return s.Written }),
		counter("bank_audit_refused_total", "Calls refused with UNAVAILABLE before they ran because the audit writer was behind (queue three quarters full) or the trail broken.",
			func(s auditlog.Stats) uint64 { return s.Refused }),
		counter("bank_audit_queue_waits_total", "Audit records whose caller waited for room in a full queue (back-pressure; never a drop).",
			func(s auditlog.Stats) uint64 { return s.QueueWaits }),
		counter("bank_audit_failures_total", "Failed writes or fsyncs of the audit file; after one the service refuses every call until restarted.",
			func(s auditlog.Stats) uint64 { return s.Failures }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bank_audit_queued_records", Help: "Audit records handed over and not yet durable."},
			func() float64 { return float64(sink.Stats().Pending) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bank_audit_checkpoint_seq", Help: "Position in the audit trail of the latest signed checkpoint."},
			func() float64 { return float64(sink.Stats().CheckpointSeq) }),
	)
	return sink, nil
}
