package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
)

// Measurement is what recording costs a caller, for `make bench`.
type Measurement struct {
	// CallerCPU is the CPU the calling goroutine spends per record handed over (an
	// allowed read: it does not wait), thread CPU time with the goroutine locked to its
	// thread, so that the writer's work on other threads is not counted.
	CallerCPU time.Duration
	// WindowMedian and WindowMax are how long a read's record, handed over alone, took
	// to be written and synced at the default flush window: what a crash can lose.
	WindowMedian, WindowMax time.Duration
}

// MeasureHandOff measures, with a sink on a file in dir, the caller's CPU per record over
// n records and the durability window over a few single records.
func MeasureHandOff(dir string, n int) (Measurement, error) {
	var m Measurement
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return m, err
	}
	s, err := Open(filepath.Join(dir, "measure.audit.jsonl"), "bench", key)
	if err != nil {
		return m, err
	}
	defer s.Close()
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
	recs := make([]*Record, n)
	for i := range recs {
		recs[i] = &Record{Time: time.Now(), Method: "/bank.identity.v1.IdentityService/WhoAmI", Allowed: true, Code: codes.OK,
			Duration: 30 * time.Microsecond, SPIFFEID: "spiffe://bank.local/customer/alice", Roles: []string{"customer"},
			Rule: `identity "customers" role "customer"`, Serial: "5A3F", Peer: peer}
	}
	cpu, err := callerCPU(func() error {
		for _, r := range recs {
			if err := s.Write(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	m.CallerCPU = cpu / time.Duration(n)
	if err := s.Flush(); err != nil {
		return m, err
	}
	var lags []time.Duration
	for range 5 {
		before, start := s.Stats().Written, time.Now()
		if err := s.Write(&Record{Time: start, Method: "/bank.identity.v1.IdentityService/WhoAmI", Allowed: true}); err != nil {
			return m, err
		}
		for s.Stats().Written == before {
			if time.Since(start) > 10*time.Second {
				return m, errors.New("a read's record was not durable within 10s")
			}
			time.Sleep(100 * time.Microsecond)
		}
		lags = append(lags, time.Since(start))
	}
	slices.Sort(lags)
	m.WindowMedian, m.WindowMax = lags[len(lags)/2], lags[len(lags)-1]
	return m, nil
}

// callerCPU runs fn locked to its OS thread and returns the thread's CPU time.
func callerCPU(fn func() error) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, err := threadCPU()
	if err != nil {
		return 0, err
	}
	if err := fn(); err != nil {
		return 0, err
	}
	end, err := threadCPU()
	if err != nil {
		return 0, err
	}
	return end - start, nil
}

var errNoThreadClock = fmt.Errorf("no per-thread CPU clock on %s", runtime.GOOS)
