package svidsource

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/pki"
	"mtlsbank/internal/tlsconfig"
)

// DefaultStartTimeout is how long Open waits for the first X.509-SVID: long enough for an
// agent that is starting, or for a registration entry created a moment ago to reach the
// agent (its next sync, every few seconds), short enough that a workload without an
// identity fails visibly.
const DefaultStartTimeout = 30 * time.Second

// maxRetryInterval caps the wait between two attempts to reach the Workload API (go-spiffe
// backs off linearly from one second). The agent is local: after a restart of it, the
// workload should be back within seconds.
const maxRetryInterval = 5 * time.Second

// Sentinel errors of Open, saying why no X.509-SVID came.
var (
	// ErrUnreachable means the Workload API could not be reached: no agent is listening
	// on the endpoint.
	ErrUnreachable = errors.New("SPIFFE Workload API unreachable")
	// ErrNoIdentity means the agent answered but has no X.509-SVID for this process: no
	// registration entry matches it.
	ErrNoIdentity = errors.New("SPIFFE Workload API has no identity for this process")
	// ErrNoSVID means no X.509-SVID came within the start timeout for another reason.
	ErrNoSVID = errors.New("no X.509-SVID from the SPIFFE Workload API")
)

// Hooks are called as the identity changes, for metrics and for re-checking connections.
// Each may be nil.
type Hooks struct {
	// OnUpdate is called after an update from the Workload API was taken into the
	// source (a rotation, a new bundle, or both).
	OnUpdate func(tlsconfig.Update)
	// OnError is called for every failed exchange with the Workload API after the start
	// (the watch broke, the agent refused, an update was refused): the current SVID stays
	// in use until it expires.
	OnError func(error)
}

// Option configures Open.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	timeout    time.Duration
	srcOpts    []tlsconfig.SourceOption
	hooks      Hooks
	maxBackoff time.Duration
}

// WithLogger sets the logger of the waiting, the rotations and the Workload API errors
// (default: none).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithStartTimeout sets how long Open waits for the first X.509-SVID (default
// DefaultStartTimeout).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithSourceOptions configures the tlsconfig.Source the identity is kept in.
func WithSourceOptions(opts ...tlsconfig.SourceOption) Option {
	return func(o *options) { o.srcOpts = append(o.srcOpts, opts...) }
}

// WithHooks sets the functions called on updates and errors.
func WithHooks(h Hooks) Option { return func(o *options) { o.hooks = h } }

// Workload is an identity taken from the SPIFFE Workload API: Source holds it for the TLS
// layer, Run keeps it current.
type Workload struct {
	endpoint string
	x        *workloadapi.X509Source
	src      *tlsconfig.Source
	logger   *slog.Logger
	hooks    Hooks
	log      *apiLog

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the Workload API at endpoint ("unix:///path/to/agent.sock") and waits,
// at most the start timeout, for this process's X.509-SVID and the bundle of trust domain
// td. It logs that it waits, and each failed attempt. Without an SVID by then it returns
// an error wrapping ErrUnreachable (no agent), ErrNoIdentity (no registration entry for
// this process) or ErrNoSVID, never blocking longer. The SVID must belong to td.
func Open(ctx context.Context, endpoint string, td spiffeid.TrustDomain, opts ...Option) (*Workload, error) {
	o := options{logger: slog.New(slog.DiscardHandler), timeout: DefaultStartTimeout, maxBackoff: maxRetryInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if err := ValidateEndpoint(endpoint); err != nil {
		return nil, err
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("SPIFFE Workload API start timeout %s must be positive", o.timeout)
	}
	log := &apiLog{logger: o.logger, endpoint: endpoint}
	o.logger.Info("waiting for an X.509-SVID from the SPIFFE Workload API", "endpoint", endpoint, "timeout", o.timeout)
	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	x, err := workloadapi.NewX509Source(wctx, workloadapi.WithClientOptions(
		workloadapi.WithAddr(endpoint),
		workloadapi.WithLogger(log),
		workloadapi.WithBackoffStrategy(linearBackoff{max: o.maxBackoff}),
	))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("waiting for an X.509-SVID from %s: %w", endpoint, ctx.Err())
		}
		return nil, startError(endpoint, o.timeout, err, log.lastError())
	}
	src, err := tlsconfig.NewSourceFrom(td, x, o.srcOpts...)
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("SPIFFE Workload API at %s: %w", endpoint, err)
	}
	log.started(o.hooks.OnError)
	w := &Workload{endpoint: endpoint, x: x, src: src, logger: o.logger, hooks: o.hooks, log: log}
	leaf := src.Certificate().Leaf
	o.logger.Info("X.509-SVID received from the SPIFFE Workload API", "endpoint", endpoint, "spiffe_id", spiffeIDOf(leaf),
		"serial", pki.SerialHex(leaf.SerialNumber), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "bundle_authorities", len(src.Bundle()))
	return w, nil
}

// ValidateEndpoint checks a Workload API address: a unix socket, unix:///path/to/agent.sock.
// go-spiffe also dials tcp://IP:PORT, which is refused: the Workload API hands out the
// trust bundle along with the SVID, and over TCP nothing says who answers (an agent
// attests its workloads through the unix socket's peer credentials).
func ValidateEndpoint(endpoint string) error {
	if err := workloadapi.ValidateAddress(endpoint); err != nil {
		return fmt.Errorf("SPIFFE Workload API endpoint %q: %w (want unix:///path/to/agent.sock)", endpoint, err)
	}
	if u, err := url.Parse(endpoint); err != nil || u.Scheme != "unix" {
		return fmt.Errorf("SPIFFE Workload API endpoint %q: only a local agent's unix socket is accepted (unix:///path/to/agent.sock): "+
			"over TCP anyone answering could hand out a trust bundle of its own", endpoint)
	}
	return nil
}

// startError explains why no SVID came: from the last error the Workload API gave.
func startError(endpoint string, timeout time.Duration, err, last error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w at %s: %w", ErrNoSVID, endpoint, err)
	}
	switch status.Code(last) {
	case codes.Unavailable:
		return fmt.Errorf("%w: nothing answers at %s after %s: is the SPIRE agent running, and is that its socket? (%v)",
			ErrUnreachable, endpoint, timeout, last)
	case codes.PermissionDenied:
		exe, _ := os.Executable()
		return fmt.Errorf("%w: the agent at %s issued no X.509-SVID in %s: no registration entry matches this process "+
			"(its selectors, e.g. unix:path:%s or unix:uid:%d; an entry created a moment ago reaches the agent at its next sync) (%v)",
			ErrNoIdentity, endpoint, timeout, exe, os.Getuid(), last)
	case codes.OK:
		return fmt.Errorf("%w at %s within %s", ErrNoSVID, endpoint, timeout)
	}
	return fmt.Errorf("%w at %s within %s: %v", ErrNoSVID, endpoint, timeout, last)
}

// Source returns the source the TLS layer takes the identity from.
func (w *Workload) Source() *tlsconfig.Source { return w.src }

// Endpoint returns the Workload API address.
func (w *Workload) Endpoint() string { return w.endpoint }

// Run keeps the source current until ctx ends: every update of the Workload API goes into
// it (Apply). The X.509-SVID rotates at about half its lifetime.
func (w *Workload) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.x.Updated():
			w.Apply()
		}
	}
}

// Apply takes the Workload API's current SVID and bundle into the source, logs a rotation
// with the old and the new serial, and calls the hooks. An update the source refuses
// (an SVID outside the trust domain, a bad bundle) is logged and leaves the source as it
// was. Run calls it on every update.
func (w *Workload) Apply() {
	u, err := w.src.Update(w.x)
	if err != nil {
		w.logger.Error("SPIFFE Workload API update refused; keeping the current X.509-SVID and bundle", "endpoint", w.endpoint, "err", err)
		if w.hooks.OnError != nil {
			w.hooks.OnError(err)
		}
		return
	}
	if u.Rotated {
		attrs := []any{"spiffe_id", spiffeIDOf(u.New), "old_serial", pki.SerialHex(u.Old.SerialNumber), "new_serial", pki.SerialHex(u.New.SerialNumber),
			"old_not_after", u.Old.NotAfter.UTC().Format(time.RFC3339), "not_after", u.New.NotAfter.UTC().Format(time.RFC3339)}
		if old, cur := spiffeIDOf(u.Old), spiffeIDOf(u.New); old != cur {
			attrs = append(attrs, "old_spiffe_id", old)
		}
		w.logger.Info("X.509-SVID rotated", attrs...)
	}
	if u.BundleChanged {
		w.logger.Info("trust bundle updated from the SPIFFE Workload API", "authorities", len(w.src.Bundle()))
	}
	if (u.Rotated || u.BundleChanged) && w.hooks.OnUpdate != nil {
		w.hooks.OnUpdate(u)
	}
}

// Close ends the watch of the Workload API. The source keeps its last material.
func (w *Workload) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.x.Close() })
	return w.closeErr
}

func spiffeIDOf(c *x509.Certificate) string {
	if c == nil || len(c.URIs) != 1 {
		return ""
	}
	return c.URIs[0].String()
}

// linearBackoff is go-spiffe's default (one more second per attempt) capped at max.
type linearBackoff struct{ max time.Duration }

func (b linearBackoff) NewBackoff() workloadapi.Backoff { return &linearAttempts{max: b.max} }

type linearAttempts struct {
	max time.Duration
	n   int
}

func (a *linearAttempts) Next() time.Duration {
	a.n++
	return min(time.Duration(a.n)*time.Second, a.max)
}

func (a *linearAttempts) Reset() { a.n = 0 }
