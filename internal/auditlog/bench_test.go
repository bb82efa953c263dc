package auditlog_test

import (
	"testing"

	"mtlsbank/internal/auditlog"
)

// BenchmarkRecord reports audit_record_ns: the CPU the calling goroutine spends per
// record handed to the sink (auditlog.MeasureHandOff), and the durability window seen
// by a read's record at the default flush window.
func BenchmarkRecord(b *testing.B) {
	m, err := auditlog.MeasureHandOff(b.TempDir(), max(b.N, 1000))
	if err != nil {
		b.Skip(err)
	}
	b.ReportMetric(float64(m.CallerCPU.Nanoseconds()), "audit_record_ns")
	b.ReportMetric(float64(m.WindowMax.Milliseconds()), "window_max_ms")
}

// BenchmarkDurableRecord: one record at a time that waits for its fsync (a denial, a
// money-moving call alone): ns/op is a write and an fsync.
func BenchmarkDurableRecord(b *testing.B) {
	s := open(b, auditPath(b), newKey(b))
	for b.Loop() {
		if err := s.Write(record(writeMethod, true, "role teller grants it")); err != nil {
			b.Fatal(err)
		}
	}
}
