package telemetry

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"

	"mtlsbank/internal/tlsconfig"
)

// Label values of bank_authz_decisions_total{decision}.
const (
	DecisionAllow           = "allow"
	DecisionDeny            = "deny"
	DecisionUnauthenticated = "unauthenticated"
	DecisionError           = "error"
)

// Label values of bank_reloads_total{outcome}.
const (
	OutcomeSuccess = "success"
	OutcomeError   = "error"
)

// noRole is the role label of a caller without any role (an unknown or unauthenticated one).
const noRole = "none"

// handshakeReasons are the reasons pre-set to zero, so that rate() works from the first
// failure.
func handshakeReasons() []string {
	return []string{
		tlsconfig.ReasonNoCertificate, tlsconfig.ReasonUnknownCA, tlsconfig.ReasonExpired,
		tlsconfig.ReasonBadUsage, tlsconfig.ReasonRevoked, tlsconfig.ReasonCRLStale, tlsconfig.ReasonCRLMissing, tlsconfig.ReasonKeyUsage, tlsconfig.ReasonCACertificate,
		tlsconfig.ReasonWeakKey, tlsconfig.ReasonSPIFFEID, tlsconfig.ReasonProtocolVersion,
		tlsconfig.ReasonTimeout, tlsconfig.ReasonNoALPN, tlsconfig.ReasonClosed, tlsconfig.ReasonOther,
	}
}

// Option configures NewMetrics.
type Option func(*options)

type options struct {
	now     func() time.Time
	buckets []float64
}

// WithClock sets the clock the certificate expiry gauge counts from (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithHandlingTimeBuckets sets the buckets (seconds) of grpc_server_handling_seconds
// (default prometheus.DefBuckets, 5ms to 10s).
func WithHandlingTimeBuckets(buckets []float64) Option {
	return func(o *options) { o.buckets = slices.Clone(buckets) }
}

// Metrics holds every metric of a service on a registry of its own: nothing is
// registered with the process-wide default registry.
type Metrics struct {
	reg         *prometheus.Registry
	rpc         *rpcMetrics
	authz       *prometheus.CounterVec
	authzMu     sync.Mutex                                      // serializes writers of authzSeries
	authzSeries atomic.Pointer[map[authzKey]prometheus.Counter] // resolved series, copied on write
	handshakes  *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	expiry      *expiryCollector
	conns       *connMetrics
	commits     *commitMetrics
	now         func() time.Time
}

// NewMetrics returns the service's metrics, registered on a new registry along with the
// Go runtime and process collectors.
func NewMetrics(opts ...Option) *Metrics {
	o := options{now: time.Now, buckets: prometheus.DefBuckets}
	for _, opt := range opts {
		opt(&o)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		rpc: newRPCMetrics(o.buckets),
		authz: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bank_authz_decisions_total",
			Help: "Authorization decisions by gRPC method, decision (allow, deny, unauthenticated, error) and the caller's roles.",
		}, []string{"method", "decision", "role"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bank_tls_handshake_failures_total",
			Help: "Rejected TLS handshakes by reason; these connections never reach a gRPC interceptor.",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bank_reloads_total",
			Help: "Reloads of certificate, bundle, CRL and policy files by file group and outcome (success, error).",
		}, []string{"file", "outcome"}),
		conns:   newConnMetrics(),
		commits: newCommitMetrics(),
		now:     o.now,
	}
	m.expiry = &expiryCollector{now: o.now, desc: prometheus.NewDesc(
		"bank_certificate_expiry_seconds",
		"Seconds until the certificate expires (negative once expired), read at scrape time.",
		[]string{"name", "spiffe_id"}, nil,
	)}
	for _, r := range handshakeReasons() {
		m.handshakes.WithLabelValues(r)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.authz, m.handshakes, m.reloads, m.expiry,
	)
	m.reg.MustRegister(m.rpc.collectors()...)
	m.reg.MustRegister(m.conns.collectors()...)
	m.reg.MustRegister(m.commits.duration, m.commits.requests)
	return m
}

// Registry returns the registry the metrics live on, for a component to add its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// UnaryServerInterceptor returns the interceptor recording grpc_server_started_total,
// grpc_server_handled_total, grpc_server_handling_seconds and messages received and sent
// for unary calls, as go-grpc-middleware's providers/prometheus does (see rpcMetrics).
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return m.rpc.unaryInterceptor()
}

// StartUnary counts a unary call of fullMethod as started at start (and its request
// as received), as UnaryServerInterceptor does; the call's End counts its outcome. It
// is the interceptor for a server that runs its chain as one function. A nil m gives
// a UnaryCall that counts nothing.
func (m *Metrics) StartUnary(fullMethod string, start time.Time) UnaryCall {
	if m == nil {
		return UnaryCall{}
	}
	return m.rpc.startUnary(fullMethod, start)
}

// StreamServerInterceptor returns the interceptor recording the same metrics for
// streaming calls, messages counted as each is sent or received.
func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return m.rpc.streamInterceptor()
}

// InitializeMethods creates a zero series for every method registered on s (a
// *grpc.Server, after registration), so that dashboards see methods never called yet,
// and resolves each method's series once for the interceptors.
func (m *Metrics) InitializeMethods(s reflection.ServiceInfoProvider) {
	m.rpc.initialize(s)
}

// ObserveAuthz counts one authorization decision: code is the status the call got from
// the authorizer (OK, PermissionDenied, Unauthenticated, or another on an internal
// failure) and roles the caller's roles (joined with "+", "none" when empty).
func (m *Metrics) ObserveAuthz(method string, code codes.Code, roles []string) {
	decision := DecisionError
	switch code {
	case codes.OK:
		decision = DecisionAllow
	case codes.PermissionDenied:
		decision = DecisionDeny
	case codes.Unauthenticated:
		decision = DecisionUnauthenticated
	}
	role := noRole
	switch len(roles) {
	case 0:
	case 1:
		role = roles[0]
	default:
		sorted := slices.Clone(roles)
		slices.Sort(sorted)
		role = strings.Join(sorted, "+")
	}
	m.authzCounter(authzKey{method, decision, role}).Inc()
}

// authzKey is the label values of a bank_authz_decisions_total series.
type authzKey struct{ method, decision, role string }

// authzCounter returns the series of k, resolved once: every call is counted here, and
// CounterVec.WithLabelValues hashes the label values and takes a lock each time. The
// series are bounded as the metric is (methods, decisions, the policy's role sets).
func (m *Metrics) authzCounter(k authzKey) prometheus.Counter {
	if p := m.authzSeries.Load(); p != nil {
		if c, ok := (*p)[k]; ok {
			return c
		}
	}
	m.authzMu.Lock()
	defer m.authzMu.Unlock()
	var old map[authzKey]prometheus.Counter
	if p := m.authzSeries.Load(); p != nil {
		old = *p
	}
	if c, ok := old[k]; ok {
		return c
	}
	series := make(map[authzKey]prometheus.Counter, len(old)+1)
	maps.Copy(series, old)
	c := m.authz.WithLabelValues(k.method, k.decision, k.role)
	series[k] = c
	m.authzSeries.Store(&series)
	return c
}

// ObserveHandshakeFailure counts a rejected handshake by tlsconfig.FailureReason(err).
// It is the hook for tlsconfig.WithHandshakeFailureHook.
func (m *Metrics) ObserveHandshakeFailure(err error) {
	if err == nil {
		return
	}
	m.handshakes.WithLabelValues(tlsconfig.FailureReason(err)).Inc()
}

// ObserveReload counts one reload of a file group; err nil is a success. It is the
// callback for reload.WithReport.
func (m *Metrics) ObserveReload(file string, err error) {
	outcome := OutcomeSuccess
	if err != nil {
		outcome = OutcomeError
	}
	m.reloads.WithLabelValues(file, outcome).Inc()
}

// InitializeReloads creates the zero series of bank_reloads_total for each file group,
// both outcomes, so that an alert on errors works from the first one.
func (m *Metrics) InitializeReloads(files ...string) {
	for _, f := range files {
		m.reloads.WithLabelValues(f, OutcomeSuccess)
		m.reloads.WithLabelValues(f, OutcomeError)
	}
}

// WatchCertificate adds a bank_certificate_expiry_seconds series named name, computed at
// each scrape from the certificate current returns (so a rotation shows at once), and
// includes it in CheckExpiry. current may return nil (no series then).
func (m *Metrics) WatchCertificate(name string, current func() *x509.Certificate) error {
	return m.expiry.add(name, current)
}

// ErrDuplicateName means a certificate name is watched twice.
var ErrDuplicateName = errors.New("certificate name already watched")

type watchedCert struct {
	name    string
	current func() *x509.Certificate
}

// expiryCollector reads the certificates at scrape time rather than keeping a gauge up
// to date: a rotated certificate is seen by the next scrape, with no hook on rotation.
type expiryCollector struct {
	desc *prometheus.Desc
	now  func() time.Time

	mu    sync.Mutex
	certs []watchedCert
}

func (c *expiryCollector) add(name string, current func() *x509.Certificate) error {
	if name == "" || current == nil {
		return errors.New("telemetry: WatchCertificate needs a name and a func")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.certs {
		if w.name == name {
			return fmt.Errorf("telemetry: %w: %s", ErrDuplicateName, name)
		}
	}
	c.certs = append(c.certs, watchedCert{name, current})
	return nil
}

func (c *expiryCollector) snapshot() []watchedCert {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.certs)
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, w := range c.snapshot() {
		cert := w.current()
		if cert == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue,
			cert.NotAfter.Sub(now).Seconds(), w.name, spiffeID(cert))
	}
}

// spiffeID returns the certificate's only URI SAN, or "" (a label, not an identity check).
func spiffeID(cert *x509.Certificate) string {
	if len(cert.URIs) != 1 {
		return ""
	}
	return cert.URIs[0].String()
}
