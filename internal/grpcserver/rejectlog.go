package grpcserver

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults of WithHandshakeLogLimit.
const (
	// DefaultHandshakeLogBurst is how many rejected handshakes of one reason are logged
	// per DefaultHandshakeLogInterval; the rest are counted in one summary line.
	DefaultHandshakeLogBurst = 10
	// DefaultHandshakeLogInterval is the window of DefaultHandshakeLogBurst.
	DefaultHandshakeLogInterval = time.Minute
)

// rejectionLog rate-limits the log lines of rejected handshakes, per reason: the first
// burst of each interval are logged, the others only counted, and one summary line per
// interval gives their number. A client looping on a refused handshake (hundreds per
// second) would otherwise write gigabytes of identical lines a day; the metric still
// counts every one.
type rejectionLog struct {
	logger   *slog.Logger
	burst    int // <= 0: no limit
	interval time.Duration

	mu     sync.Mutex
	byKind map[string]*rejectionWindow
}

// rejectionWindow is one reason's current interval.
type rejectionWindow struct {
	level      slog.Level
	start      time.Time
	logged     int
	suppressed int
	flush      *time.Timer // pending summary, while suppressed > 0
}

func newRejectionLog(logger *slog.Logger, burst int, interval time.Duration) *rejectionLog {
	return &rejectionLog{logger: logger, burst: burst, interval: interval, byKind: make(map[string]*rejectionWindow)}
}

// log writes the rejection's line at level, unless its reason's burst is spent.
func (r *rejectionLog) log(level slog.Level, reason string, err error) {
	if r.burst <= 0 || r.interval <= 0 {
		r.logger.Log(context.Background(), level, "TLS handshake rejected", "reason", reason, "err", err.Error())
		return
	}
	now := time.Now()
	r.mu.Lock()
	w := r.byKind[reason]
	if w == nil {
		w = &rejectionWindow{start: now}
		r.byKind[reason] = w
	}
	if now.Sub(w.start) >= r.interval {
		if w.suppressed > 0 { // the summary's timer has not run yet: write it now
			w.flush.Stop()
			r.summaryLocked(reason, w, now)
		}
		w.start, w.logged = now, 0
	}
	w.level = level
	if w.logged < r.burst {
		w.logged++
		r.mu.Unlock()
		r.logger.Log(context.Background(), level, "TLS handshake rejected", "reason", reason, "err", err.Error())
		return
	}
	w.suppressed++
	if w.suppressed == 1 {
		w.flush = time.AfterFunc(w.start.Add(r.interval).Sub(now), func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if w.suppressed > 0 {
				r.summaryLocked(reason, w, time.Now())
			}
		})
	}
	r.mu.Unlock()
}

// summaryLocked writes the summary of w's suppressed lines and resets their count; r.mu
// is held (the line is written under it, so that summaries of one reason stay in order).
func (r *rejectionLog) summaryLocked(reason string, w *rejectionWindow, now time.Time) {
	r.logger.Log(context.Background(), w.level, "TLS handshake rejections not logged", "reason", reason, "count", w.suppressed,
		"since", w.start.UTC().Format(time.RFC3339), "window", now.Sub(w.start).Round(time.Second).String())
	w.suppressed = 0
}
