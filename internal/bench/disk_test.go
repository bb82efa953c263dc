package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestProbeFsync(t *testing.T) {
	dir := t.TempDir()
	s, err := probeFsync(context.Background(), dir, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if s.calls == 0 || s.calls != len(s.lat) {
		t.Fatalf("probe counted %d fsyncs with %d latencies, want at least one each", s.calls, len(s.lat))
	}
	if p50, p99 := s.quantile(0.5), s.quantile(0.99); p50 <= 0 || p99 < p50 {
		t.Fatalf("fsync p50 %v, p99 %v: want 0 < p50 <= p99", p50, p99)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Fatalf("the probe left %v behind (%v)", left, err)
	}

	if _, err := probeFsync(context.Background(), filepath.Join(dir, "missing"), time.Millisecond); err == nil {
		t.Fatal("a probe in a directory that does not exist succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := probeFsync(ctx, dir, time.Second); err == nil {
		t.Fatal("a probe with a cancelled context succeeded")
	}
}
