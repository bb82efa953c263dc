package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is a readiness check: nil when the dependency it checks is usable. It must
// return once ctx ends.
type Check func(ctx context.Context) error

// Timeouts of the HTTP server: the port is reachable without mTLS, so a client that
// trickles its request or never reads the answer must not hold a connection for long.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 8 << 10
	// scrapeTimeout stays under writeTimeout so that a slow scrape gets a 503, not a reset.
	scrapeTimeout    = 20 * time.Second
	maxScrapesAtOnce = 4
	// DefaultCheckTimeout bounds every readiness check of one /readyz request.
	DefaultCheckTimeout = 2 * time.Second
)

// ServerOption configures NewServer.
type ServerOption func(*Server)

// WithReadinessCheck adds a check that /readyz runs; name shows in a 503 answer and in
// the log, so it should say what is checked ("store", "certificate", "accounts").
func WithReadinessCheck(name string, check Check) ServerOption {
	return func(s *Server) { s.checks = append(s.checks, &readyCheck{name: name, fn: check}) }
}

// WithCheckTimeout bounds each readiness check of a /readyz request (default
// DefaultCheckTimeout); a check still running then fails.
func WithCheckTimeout(d time.Duration) ServerOption {
	return func(s *Server) { s.checkTimeout = d }
}

// Server is the plain-HTTP endpoint for Prometheus and probes that cannot do mTLS:
//
//	/metrics  the registry of Metrics, in the Prometheus text format;
//	/healthz  200 while the process serves HTTP (liveness);
//	/readyz   200 when every readiness check passes, else 503 naming the failing ones.
//
// It exposes no data beyond metrics and check names; bind it to a private address.
type Server struct {
	http         *http.Server
	logger       *slog.Logger
	checks       []*readyCheck
	details      []readyDetail
	checkTimeout time.Duration
	draining     atomic.Bool
}

type readyCheck struct {
	name    string
	fn      Check
	failing atomic.Bool // logged on change only: probes run every few seconds
}

// NewServer returns a Server for m's registry; logger (nil discards) gets a record when a
// readiness check starts or stops failing.
func NewServer(m *Metrics, logger *slog.Logger, opts ...ServerOption) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{logger: logger, checkTimeout: DefaultCheckTimeout}
	for _, opt := range opts {
		opt(s)
	}
	seen := make(map[string]bool)
	for _, c := range s.checks {
		if c.name == "" || c.fn == nil || strings.ContainsAny(c.name, ", \n") {
			return nil, fmt.Errorf("telemetry: readiness check %q: need a name without spaces or commas, and a func", c.name)
		}
		if seen[c.name] {
			return nil, fmt.Errorf("telemetry: readiness check %q added twice", c.name)
		}
		seen[c.name] = true
	}
	metrics := promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg,
		Timeout:             scrapeTimeout,
		MaxRequestsInFlight: maxScrapesAtOnce,
	}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Serve serves lis until Shutdown; it returns nil after a Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.http.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: serve %s: %w", lis.Addr(), err)
	}
	return nil
}

// Drain makes /readyz answer 503 from now on, so that load balancers stop sending
// traffic before the gRPC server stops; /metrics and /healthz keep answering.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown stops accepting, lets requests in flight finish until ctx ends, then closes.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		plain(w, http.StatusServiceUnavailable, "not ready: shutting down")
		return
	}
	failed := s.runChecks(r.Context())
	if len(failed) > 0 {
		plain(w, http.StatusServiceUnavailable, "not ready: "+strings.Join(failed, ", ")+s.detailLines())
		return
	}
	plain(w, http.StatusOK, "ok"+s.detailLines())
}

// runChecks runs every check at once, each bounded by checkTimeout, and returns the
// names of those that failed, in the order they were added.
func (s *Server) runChecks(ctx context.Context) []string {
	errs := make([]error, len(s.checks))
	var wg sync.WaitGroup
	for i, c := range s.checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.checkTimeout)
			defer cancel()
			errs[i] = runCheck(cctx, c.fn)
		})
	}
	wg.Wait()
	var failed []string
	for i, c := range s.checks {
		if errs[i] != nil {
			failed = append(failed, c.name)
			if !c.failing.Swap(true) {
				s.logger.Warn("readiness check failing", "check", c.name, "err", errs[i])
			}
		} else if c.failing.Swap(false) {
			s.logger.Info("readiness check passing again", "check", c.name)
		}
	}
	return failed
}

// runCheck returns fn's error, or ctx's if fn has not returned when ctx ends (a check
// that ignores its context must not hold the probe past the timeout).
func runCheck(ctx context.Context, fn Check) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- fn(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, body)
}
