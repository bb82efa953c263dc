package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"
)

// fsyncProbeWrite is what one fsync of the probe makes durable: an append of the size of
// a group-commit batch's WAL frames (a few pages).
const fsyncProbeWrite = 16 << 10

// probeFsync measures the disk under dir as the durable writes use it: for d, it appends
// fsyncProbeWrite bytes to a file of its own and fsyncs it, one after the other. The sample
// counts the fsyncs and holds their latencies; the file is removed. On a shared machine the
// same disk's fsync latency drifts with what its neighbours do (and with how long it has
// been synced without pause), and a durable load's rate follows it: the report prints the
// probe next to the rates so that a slow round can be told from a slow build.
func probeFsync(ctx context.Context, dir string, d time.Duration) (s sample, err error) {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return sample{}, fmt.Errorf("fsync probe: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("fsync probe: %w", cerr)
		}
		if rerr := os.Remove(f.Name()); err == nil && rerr != nil {
			err = fmt.Errorf("fsync probe: %w", rerr)
		}
	}()
	buf := make([]byte, fsyncProbeWrite)
	start := time.Now()
	for deadline := start.Add(d); ctx.Err() == nil && time.Now().Before(deadline); {
		if _, err := f.Write(buf); err != nil {
			return sample{}, fmt.Errorf("fsync probe: %w", err)
		}
		t0 := time.Now()
		if err := f.Sync(); err != nil {
			return sample{}, fmt.Errorf("fsync probe: %w", err)
		}
		s.lat = append(s.lat, time.Since(t0))
	}
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	s.calls, s.elapsed = len(s.lat), time.Since(start)
	slices.Sort(s.lat)
	return s, nil
}
