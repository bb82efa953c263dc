package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"
)

// callTimeout bounds one call of the load: a call that takes longer is a failure of the
// run, not a slow sample.
const callTimeout = 10 * time.Second

// sample is one round of load against one target.
type sample struct {
	calls   int // successful calls
	errors  int // failed calls, not in calls nor in lat
	example error
	elapsed time.Duration
	cpu     time.Duration           // user+system CPU of the whole process (servers and clients)
	lat     []time.Duration         // sorted
	disk    *sample                 // a durable load's: the disk's fsync latency just before it (probeFsync)
	commits map[string]commitTotals // a durable load's: the group commits of each store during it
}

func (s sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.calls) / s.elapsed.Seconds()
}

// merge pools samples of several rounds.
func merge(samples []sample) sample {
	var out sample
	for _, s := range samples {
		out.calls += s.calls
		out.errors += s.errors
		if out.example == nil {
			out.example = s.example
		}
		out.elapsed += s.elapsed
		out.cpu += s.cpu
		out.lat = append(out.lat, s.lat...)
	}
	slices.Sort(out.lat)
	return out
}

// quantile returns the q-quantile (0..1) of the latencies, nearest rank.
func (s sample) quantile(q float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(s.lat))+0.5) - 1
	return s.lat[min(max(i, 0), len(s.lat)-1)]
}

// cpuPerCall is the process CPU time per call: both ends of every call run in this
// process, so the difference between two targets under the same client is what the
// servers' work differs by.
func (s sample) cpuPerCall() time.Duration {
	if s.calls == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.calls)
}

// callFunc makes one call for worker w (0 <= w < concurrency); i counts that worker's calls.
type callFunc func(ctx context.Context, w, i int) error

// runLoad runs a closed loop: concurrency workers each call fn back to back until d has
// passed. A failed call is counted, kept out of the rate and the latencies, and reported;
// a round in which no call succeeded is an error (it measured nothing).
func runLoad(ctx context.Context, concurrency int, d time.Duration, fn callFunc) (sample, error) {
	type worker struct {
		lat     []time.Duration
		errors  int
		example error
	}
	workers := make([]worker, concurrency)
	var wg sync.WaitGroup
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Go(func() {
			wk := &workers[w]
			wk.lat = make([]time.Duration, 0, 4096)
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				err := fn(cctx, w, i)
				cancel()
				if err != nil {
					if wk.errors == 0 {
						wk.example = fmt.Errorf("worker %d call %d: %w", w, i, err)
					}
					wk.errors++
					continue
				}
				wk.lat = append(wk.lat, time.Since(t0))
			}
		})
	}
	wg.Wait()
	s := sample{elapsed: time.Since(start), cpu: processCPU() - cpu0}
	for _, wk := range workers {
		s.calls += len(wk.lat)
		s.lat = append(s.lat, wk.lat...)
		s.errors += wk.errors
		if s.example == nil {
			s.example = wk.example
		}
	}
	slices.Sort(s.lat)
	if err := ctx.Err(); err != nil {
		return s, err
	}
	if s.calls == 0 && s.errors > 0 {
		return s, fmt.Errorf("every call failed (%d), e.g. %w", s.errors, s.example)
	}
	return s, nil
}

// processCPU returns the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
