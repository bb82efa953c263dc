package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

const (
	// maxFloodSources is how many flooding addresses there can be: 127.0.0.10 to .255.
	maxFloodSources = 246
	// floodDialTimeout bounds one dial of the flood.
	floodDialTimeout = 2 * time.Second
	// floodRampTimeout bounds the wait for every flood connection to have been opened
	// once before the first legitimate call.
	floodRampTimeout = 30 * time.Second
	// floodCallTimeout bounds one legitimate call: a call slower than that failed.
	floodCallTimeout = 10 * time.Second
	// floodRefusedMetric counts the connections the service refused, per reason.
	floodRefusedMetric = "bank_connections_refused_total"
)

// floodClientIP is the legitimate client's address, outside the flood's.
var floodClientIP = net.IPv4(127, 0, 0, 2)

// floodSourceIP is the address of flood connection i.
func floodSourceIP(i, sources int) net.IP { return net.IPv4(127, 0, 0, byte(10+i%sources)) }

// FloodResult is what the flood section measured.
type FloodResult struct {
	// Opened counts the flood's connections that the kernel accepted (reopens included),
	// DialErrors its dials that failed; PeakHeld is the most flood connections open at
	// once on the flood's side (the service may have closed some already).
	Opened, DialErrors, PeakHeld int64
	// FirstDialError is the first dial of the flood that failed (nil if none did).
	FirstDialError error
	// Refused is the service's bank_connections_refused_total, per reason, during the
	// flood (its value after less its value before).
	Refused map[string]float64
	// Baseline are the durations of the same calls made before the flood, one after the
	// other: what a fresh call costs on this machine at this moment without the flood.
	Baseline []time.Duration
	// Calls are the durations of the legitimate calls during the flood that succeeded.
	Calls []time.Duration
	// Errors counts the legitimate calls that failed; FirstError is the first.
	Errors     int
	FirstError error
}

// RefusedTotal is the sum of Refused.
func (f *FloodResult) RefusedTotal() float64 {
	total := 0.0
	for _, v := range f.Refused {
		total += v
	}
	return total
}

// CallQuantile returns the q-quantile of the successful calls' durations (0 if none).
func (f *FloodResult) CallQuantile(q float64) time.Duration { return quantile(f.Calls, q) }

// quantile returns the q-quantile of ds (the element at rank q*len, 0 if empty).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// CallMaxMs is the slowest legitimate call in milliseconds, or +Inf when a call failed
// or none ran: a call that did not complete did not complete within any bound.
func (f *FloodResult) CallMaxMs() float64 {
	if f.Errors > 0 || len(f.Calls) == 0 {
		return math.Inf(1)
	}
	return msFloat(slices.Max(f.Calls))
}

func msFloat(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// flood starts an accounts service of its own (its own PKI, database and /metrics), times
// cfg.FloodCalls calls without a flood, floods it with cfg.FloodConns silent TCP
// connections from cfg.FloodSources addresses, waits until each has been tried once, then
// times cfg.FloodCalls legitimate calls spread over cfg.FloodDuration, each a fresh TCP
// connection, mTLS handshake and WhoAmI from 127.0.0.2, and closes everything.
func (h *harness) flood(ctx context.Context) (err error) {
	c := h.cfg
	h.progress("flood: starting an accounts service; %d silent connections from %d addresses, %d fresh calls over %s",
		c.FloodConns, c.FloodSources, c.FloodCalls, c.FloodDuration)
	m, err := newMaterial(pki.ECDSAP256)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.Dir, "flood")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	srv, err := startAccounts(ctx, m, dir, c.AccountsPolicy, h.logger, true, nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	alice, err := m.client(aliceID)
	if err != nil {
		return err
	}
	src, err := m.source(alice)
	if err != nil {
		return err
	}
	creds := tlsconfig.ClientCredentials(src, "localhost", tlsconfig.WithServerID(spiffeid.RequireFromString(accountsID)))
	call := func(ctx context.Context) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, floodCallTimeout)
		defer cancel()
		start := time.Now()
		err := freshWhoAmI(ctx, srv.addr, creds)
		return time.Since(start), err
	}
	// The service answers before the flood (a failure during it is the flood's doing), and
	// the same calls without the flood are the baseline.
	res := &FloodResult{}
	for range c.FloodCalls {
		d, err := call(ctx)
		if err != nil {
			return fmt.Errorf("flood: WhoAmI before the flood: %w", err)
		}
		res.Baseline = append(res.Baseline, d)
	}
	metricsURL := "http://" + srv.metricsAddr + "/metrics"
	before, err := scrapeRefused(ctx, metricsURL)
	if err != nil {
		return err
	}

	fl := startFlood(ctx, srv.addr, c.FloodConns, c.FloodSources, c.FloodReopen)
	rampErr := fl.waitRamped(ctx, floodRampTimeout)
	if rampErr == nil {
		h.progress("flood: %d connections opened, %d held; timing the calls", fl.opened.Load(), fl.held.Load())
		interval := c.FloodDuration / time.Duration(c.FloodCalls)
		start := time.Now()
		for i := range c.FloodCalls {
			// Calls at regular times over the flood, the first at once.
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil {
				rampErr = ctx.Err()
				break
			}
			d, err := call(ctx)
			if err != nil {
				res.Errors++
				if res.FirstError == nil {
					res.FirstError = err
				}
				continue
			}
			res.Calls = append(res.Calls, d)
		}
		// The flood lasts its duration even if the calls were quicker.
		select {
		case <-time.After(time.Until(start.Add(c.FloodDuration))):
		case <-ctx.Done():
		}
	}
	after, scrapeErr := scrapeRefused(ctx, metricsURL)
	fl.stop()
	res.Opened, res.DialErrors, res.PeakHeld = fl.opened.Load(), fl.dialErrors.Load(), fl.peak.Load()
	if e := fl.firstDialErr.Load(); e != nil {
		res.FirstDialError = *e
	}
	if err := errors.Join(rampErr, scrapeErr); err != nil {
		return fmt.Errorf("flood: %w", err)
	}
	res.Refused = make(map[string]float64, len(after))
	for reason, v := range after {
		res.Refused[reason] = v - before[reason]
	}
	h.res.Flood = res
	return nil
}

// freshWhoAmI makes one call as a command-line client does: a new connection from
// floodClientIP (TCP, full mTLS handshake, HTTP/2, no session resumption), WhoAmI, close.
// The call does not wait for a connection to become ready: a refused connection is a
// failed call, as it is for the client.
func freshWhoAmI(ctx context.Context, addr string, creds credentials.TransportCredentials) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: floodClientIP}}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer cc.Close()
	resp, err := identityv1.NewIdentityServiceClient(cc).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
	if err != nil {
		return fmt.Errorf("WhoAmI: %w", err)
	}
	if resp.GetSpiffeId() != aliceID {
		return fmt.Errorf("WhoAmI answered %q, want %q", resp.GetSpiffeId(), aliceID)
	}
	return nil
}

// flooder holds the flood's connections open until stop.
type flooder struct {
	cancel                   context.CancelFunc
	wg                       sync.WaitGroup
	opened, dialErrors, held atomic.Int64
	peak                     atomic.Int64
	firstDialErr             atomic.Pointer[error]
	tried                    atomic.Int64 // connections that made their first attempt
	conns                    int
}

// startFlood opens conns silent TCP connections to addr, connection i from
// floodSourceIP(i, sources), each reopened reopen after it drops (or its dial fails),
// until stop.
func startFlood(ctx context.Context, addr string, conns, sources int, reopen time.Duration) *flooder {
	ctx, cancel := context.WithCancel(ctx)
	f := &flooder{cancel: cancel, conns: conns}
	for i := range conns {
		f.wg.Go(func() { f.hold(ctx, addr, floodSourceIP(i, sources), reopen) })
	}
	return f
}

// hold keeps one silent connection from ip open, reopening it when dropped.
func (f *flooder) hold(ctx context.Context, addr string, ip net.IP, reopen time.Duration) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: floodDialTimeout}
	first := true
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if first {
			f.tried.Add(1)
			first = false
		}
		if err != nil {
			f.dialErrors.Add(1)
			f.firstDialErr.CompareAndSwap(nil, &err)
		} else {
			f.opened.Add(1)
			n := f.held.Add(1)
			for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
			}
			// Close at the end of the flood, or when the service drops it: a read
			// returns then (the flood never writes, so the service never sends).
			stopClose := context.AfterFunc(ctx, func() { conn.Close() })
			var b [1]byte
			_, _ = conn.Read(b[:])
			stopClose()
			conn.Close()
			f.held.Add(-1)
		}
		select {
		case <-time.After(reopen):
		case <-ctx.Done():
		}
	}
}

// waitRamped waits until every connection of the flood made its first attempt.
func (f *flooder) waitRamped(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for f.tried.Load() < int64(f.conns) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d flood connections tried within %s", f.tried.Load(), f.conns, timeout)
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stop closes every flood connection and waits for their goroutines.
func (f *flooder) stop() {
	f.cancel()
	f.wg.Wait()
}

// scrapeRefused returns floodRefusedMetric per reason label from the /metrics at url.
func scrapeRefused(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	fam, ok := families[floodRefusedMetric]
	if !ok {
		return nil, fmt.Errorf("scrape %s: no %s", url, floodRefusedMetric)
	}
	out := map[string]float64{}
	for _, mt := range fam.GetMetric() {
		reason := "?"
		for _, l := range mt.GetLabel() {
			if l.GetName() == "reason" {
				reason = l.GetValue()
			}
		}
		out[reason] += mt.GetCounter().GetValue()
	}
	return out, nil
}

// sortedReasons returns the keys of refused in order.
func sortedReasons(refused map[string]float64) []string {
	return slices.Sorted(maps.Keys(refused))
}
