package service

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/dsn"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/ratelimit"
	"mtlsbank/internal/reload"
	"mtlsbank/internal/svidsource"
	"mtlsbank/internal/telemetry"
	"mtlsbank/internal/tlsconfig"
	"mtlsbank/internal/tracing"
	"mtlsbank/internal/whoami"
)

// Reload group names, the file label of bank_reloads_total.
const (
	GroupBundle      = "bundle"
	GroupCertificate = "certificate"
	GroupCRL         = "crl"
	GroupPolicy      = "policy"
)

// Service is what a bank service plugs into the shared runtime.
type Service struct {
	// Name names the service in logs and errors, and its certificate in
	// bank_certificate_expiry_seconds ("accounts").
	Name string
	// DefaultPolicy is the embedded policy used when Config.Policy is empty.
	DefaultPolicy []byte
	// Services are the descriptors Setup registers (IdentityService, health and
	// reflection are the runtime's). The policy must grant every one of their methods
	// before Setup runs, so that a start refused for an uncovered method opens nothing.
	Services []*grpc.ServiceDesc
	// Setup opens what the service needs (its database, its clients) and registers its
	// implementations of Services on env.Server. If it fails, what it gave to
	// env.OnClose is closed.
	Setup func(ctx context.Context, env *Env) error
	// Migrate is the migration step (--migrate): it brings db to the service's schema
	// and, on PostgreSQL with runtimeRole not empty, grants that role exactly what
	// the service needs at run time. It returns the schema version.
	Migrate func(ctx context.Context, db dsn.DB, runtimeRole string) (version int, err error)
}

// Run is a service's life once its flags are parsed: with cfg.Migrate the
// migration step alone (nothing is served, no certificate is read); otherwise
// New, then Runtime.Run until ctx ends.
func Run(ctx context.Context, svc Service, cfg Config, logger *slog.Logger, opts ...Option) error {
	if !cfg.Migrate {
		rt, err := New(ctx, svc, cfg, logger, opts...)
		if err != nil {
			return err
		}
		return rt.Run(ctx)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if svc.Migrate == nil {
		return fmt.Errorf("%s: no migration step", svc.Name)
	}
	db, _ := dsn.Parse(cfg.DB) // Validate parsed it
	if db.Engine == dsn.Postgres && cfg.DBRuntimeRole == "" {
		logger.Warn("--migrate without --db-runtime-role: no role was granted the service's privileges; "+
			"the service should not run as the schema owner", "db", db.String())
	}
	version, err := svc.Migrate(ctx, db, cfg.DBRuntimeRole)
	if err != nil {
		return fmt.Errorf("%s: migrate %s: %w", svc.Name, db, err)
	}
	attrs := []any{"db", db.String()}
	if version > 0 {
		attrs = append(attrs, "schema_version", version)
	}
	if cfg.DBRuntimeRole != "" {
		attrs = append(attrs, "runtime_role", cfg.DBRuntimeRole)
	}
	logger.Info(svc.Name+" database migrated", attrs...)
	return nil
}

// Env is what Setup gets to build the service with.
type Env struct {
	// Config is the service's configuration.
	Config Config
	// Source is the reloadable TLS material; a client dialing another service with
	// tlsconfig.ClientCredentials(Source, ...) presents the current certificate.
	Source *tlsconfig.Source
	// Server is the gRPC server to register on.
	Server *grpcserver.Server
	// Metrics is the service's metrics registry, for metrics of its own.
	Metrics *telemetry.Metrics
	// Logger is the service's logger; records logged with a call's context carry its
	// trace_id and span_id.
	Logger *slog.Logger
	// Tracing is the service's tracing: a client the service dials for a call (payments
	// to accounts) adds Tracing.DialOption(), so that the call continues the trace.
	Tracing *tracing.Tracing

	rt *Runtime
}

// OnClose registers fn to run once the gRPC server has stopped and the background
// tasks have returned, in the reverse order of registration (a ledger before its store).
func (e *Env) OnClose(fn func() error) { e.rt.closers = append(e.rt.closers, fn) }

// Go runs fn beside the server from the start of Serve; its ctx ends once the gRPC server
// has drained, and closing waits for fn to return.
func (e *Env) Go(fn func(ctx context.Context)) { e.rt.background = append(e.rt.background, fn) }

// WarnSchemaPrivileged logs, when privileged, that the service's database role could
// change the schema (a superuser or the tables' owner): a compromised replica could
// then drop or rewrite the tables. Setup calls it with what its store found.
func (e *Env) WarnSchemaPrivileged(privileged bool) {
	if privileged {
		e.Logger.Warn("the database role can change the schema (superuser, owner or CREATE on the schema): " +
			"serve as a runtime role granted by --migrate --db-runtime-role (README: least privilege)")
	}
}

// ReadinessCheck adds a check to /readyz, named for what it checks ("store", "accounts").
func (e *Env) ReadinessCheck(name string, check telemetry.Check) {
	e.rt.checks = append(e.rt.checks, telemetry.WithReadinessCheck(name, check))
}

// Option configures New.
type Option func(*options)

type options struct {
	signals      <-chan os.Signal
	tracing      tracing.Config
	auditOptions []auditlog.Option
}

// WithReloadSignal makes every delivery on c reload every file at once, changed or not:
// the channel a main gives to signal.Notify for SIGHUP (Main does).
func WithReloadSignal(c <-chan os.Signal) Option {
	return func(o *options) { o.signals = c }
}

// WithTracing configures the service's tracing (Main passes tracing.FromEnv); without it
// the service carries trace context but exports nothing (the zero tracing.Config).
func WithTracing(cfg tracing.Config) Option {
	return func(o *options) { o.tracing = cfg }
}

// Runtime is an assembled service: TLS material and policy loaded, the hardened gRPC
// server with everything registered, metrics, the reload watcher and the HTTP probes.
// Serve (or Run) serves it until its context ends, then shuts it down in order.
type Runtime struct {
	svc     Service
	cfg     Config
	logger  *slog.Logger
	src     *tlsconfig.Source
	srv     *grpcserver.Server
	metrics *telemetry.Metrics
	tracing *tracing.Tracing
	watcher *reload.Watcher
	http    *telemetry.Server

	revocation *telemetry.RevocationMetrics
	// workload is the Workload API identity (--spiffe-endpoint); nil with files.
	workload *svidsource.Workload
	svid     *telemetry.SVIDMetrics

	closers    []func() error
	background []func(context.Context)
	checks     []telemetry.ServerOption

	closeOnce sync.Once
	closeErr  error
}

// New assembles svc with cfg. In order: metrics and tracing; the policy (cfg.Policy or the
// embedded default) and the TLS material, each checked; the audit trail (its chain recovered
// from the file); the gRPC server with every limit of cfg
// and IdentityService; the policy checked against svc.Services; only then svc.Setup,
// which opens the service's resources; the reload watcher over the files; the HTTP
// probes. A refused start has opened nothing it does not close.
func New(ctx context.Context, svc Service, cfg Config, logger *slog.Logger, opts ...Option) (_ *Runtime, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// Every record logged with a call's context (the call log, the audit record, the
	// handlers') names the call's trace.
	logger = slog.New(tracing.NewLogHandler(logger.Handler()))
	r := &Runtime{svc: svc, cfg: cfg, logger: logger, metrics: telemetry.NewMetrics()}
	warnOpenDataDirs(logger, cfg)
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	if r.tracing, err = tracing.New(ctx, svc.Name, o.tracing); err != nil {
		return nil, err
	}
	// Registered first, so run last: the spans of the last calls, and of what Setup's
	// closers do, are flushed.
	r.closers = append(r.closers, r.flushSpans)

	policy, err := r.loadPolicy()
	if err != nil {
		return nil, err
	}
	srcOpts, err := sourceOptions(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.UsesWorkloadAPI() {
		if err := r.openWorkloadAPI(ctx, policy.TrustDomain(), srcOpts); err != nil {
			return nil, err
		}
	} else {
		files := tlsconfig.Files{Cert: cfg.Cert, Key: cfg.Key, CA: cfg.CA, Intermediates: r.intermediatesToLoad(), CRL: cfg.CRL}
		if r.src, err = tlsconfig.LoadSource(policy.TrustDomain(), files, srcOpts...); err != nil {
			return nil, err
		}
	}
	if err := r.watchRevocation(); err != nil {
		return nil, err
	}
	serverOpts, err := r.serverOptions()
	if err != nil {
		return nil, err
	}
	sink, err := r.openAudit(o.auditOptions)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", svc.Name, err)
	}
	serverOpts = append(serverOpts, grpcserver.WithAuditSink(sink))
	if r.srv, err = grpcserver.New(r.src, policy, logger, serverOpts...); err != nil {
		return nil, err
	}
	identityv1.RegisterIdentityServiceServer(r.srv, whoami.New())
	if err := r.srv.CheckWith(svc.Services...); err != nil {
		return nil, fmt.Errorf("%s: %w", svc.Name, err)
	}
	if err := r.watchFiles(o.signals); err != nil {
		return nil, err
	}
	if svc.Setup != nil {
		env := &Env{Config: cfg, Source: r.src, Server: r.srv, Metrics: r.metrics, Logger: logger, Tracing: r.tracing, rt: r}
		if err := svc.Setup(ctx, env); err != nil {
			return nil, err
		}
	}
	if err := r.srv.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", svc.Name, err)
	}
	if err := r.metrics.WatchCertificate(svc.Name, r.leaf); err != nil {
		return nil, err
	}
	checks := append([]telemetry.ServerOption{telemetry.WithReadinessCheck("certificate", r.checkCertificate)}, r.checks...)
	if r.http, err = telemetry.NewServer(r.metrics, logger, checks...); err != nil {
		return nil, err
	}
	return r, nil
}

// loadPolicy returns the policy of cfg.Policy, or the embedded default.
func (r *Runtime) loadPolicy() (*authz.Policy, error) {
	if r.cfg.Policy == "" {
		if len(r.svc.DefaultPolicy) == 0 {
			return nil, fmt.Errorf("%s: no --policy and no embedded default policy", r.svc.Name)
		}
		return authz.ParsePolicy("embedded policy.yaml", r.svc.DefaultPolicy)
	}
	return authz.LoadPolicy(r.cfg.Policy)
}

// serverOptions turns the configuration into grpcserver options.
func (r *Runtime) serverOptions() ([]grpcserver.Option, error) {
	c := r.cfg
	maxConns, err := connectionBudget(c.MaxConnections, r.logger)
	if err != nil {
		return nil, err
	}
	// Lowered with the connection cap, strangers keep their share of it.
	maxHS := max(1, int(int64(c.MaxHandshaking)*int64(maxConns)/int64(c.MaxConnections)))
	if maxHS < c.MaxHandshaking {
		r.logger.Warn("--max-handshaking lowered with --max-connections", "configured", c.MaxHandshaking, "max_handshaking", maxHS)
	}
	opts := []grpcserver.Option{
		grpcserver.WithMaxConnections(maxConns, c.MaxConnectionsPerSource),
		grpcserver.WithMaxHandshaking(maxHS, c.MaxHandshakingPerSource),
		grpcserver.WithMetrics(r.metrics),
		grpcserver.WithConnectionTimeout(c.HandshakeTimeout),
		grpcserver.WithMaxConnectionAge(c.MaxConnectionAge, c.MaxConnectionAgeGrace),
		grpcserver.WithMaxRecvMsgSize(int(c.MaxRecvMsgSize)),
		grpcserver.WithMaxConcurrentStreams(uint32(c.MaxConcurrentStreams)),
		grpcserver.WithMaxStreams(c.MaxStreamsPerIdentity, c.MaxStreams),
		grpcserver.WithKeepaliveMinTime(c.KeepaliveMinTime),
		grpcserver.WithDefaultDeadline(c.DefaultDeadline),
	}
	if cc := r.tracing.CallContext(); cc != nil {
		// No span recorded: the trace context is carried by the first interceptor,
		// without a stats handler (for which grpc-go would build events per call).
		opts = append(opts, grpcserver.WithCallContext(cc))
	} else {
		opts = append(opts, grpcserver.WithServerOptions(r.tracing.ServerOption()))
	}
	if c.RateLimit > 0 {
		var lopts []ratelimit.Option
		for _, id := range c.RateLimitExempt {
			lopts = append(lopts, ratelimit.WithIdentityLimit(id, rate.Inf, 1))
		}
		l, err := ratelimit.New(rate.Limit(c.RateLimit), c.RateBurst, lopts...)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpcserver.WithRateLimiter(l))
	}
	return opts, nil
}

// watchFiles sets up the reload watcher. Groups reload in the order added: the bundle
// first (a new certificate or CRL may need its CA), then the intermediates (they must
// chain to a root of the bundle), the CRL after the certificate (a CRL
// signer may arrive in the certificate's chain), the policy last. The embedded default
// policy cannot change, so it is not watched.
func (r *Runtime) watchFiles(signals <-chan os.Signal) error {
	r.watcher = reload.New(r.logger,
		reload.WithInterval(r.cfg.ReloadInterval),
		reload.WithSignal(signals),
		reload.WithReport(r.reloaded),
	)
	type group struct {
		name  string
		fn    reload.Func
		paths []string
	}
	var groups []group
	if !r.cfg.UsesWorkloadAPI() { // the Workload API brings its own updates
		groups = append(groups, group{GroupBundle, reload.Bundle(r.src), []string{r.cfg.CA}})
		if r.cfg.Intermediates != "" {
			groups = append(groups, group{GroupIntermediates, reload.Intermediates(r.src), []string{r.cfg.Intermediates}})
		}
		groups = append(groups, group{GroupCertificate, reload.Certificate(r.src), []string{r.cfg.Cert, r.cfg.Key}})
		if r.cfg.CRL != "" {
			groups = append(groups, group{GroupCRL, r.crlReload(), []string{r.cfg.CRL}})
		}
	}
	if r.cfg.Policy != "" {
		groups = append(groups, group{GroupPolicy, reload.Policy(r.srv.Authorizer(), r.srv.GRPC().GetServiceInfo), []string{r.cfg.Policy}})
	}
	for _, g := range groups {
		if err := r.watcher.Add(g.name, g.fn, g.paths...); err != nil {
			return err
		}
		r.metrics.InitializeReloads(g.name)
	}
	return nil
}

// reloaded counts a reload attempt and, after a successful reload of TLS material,
// re-checks every open connection against it (before counting the reload, so that a
// reload seen in the metrics has reached the connections): a peer whose certificate or CA was just
// revoked (or left the bundle) loses its connections now, not at its next call. It also
// warns again of every CA left without a CRL.
func (r *Runtime) reloaded(group string, err error) {
	if err == nil && group != GroupPolicy {
		r.srv.RecheckConnections()
		r.reportMissingCRLs()
	}
	r.metrics.ObserveReload(group, err)
}

// leaf returns the certificate served now.
func (r *Runtime) leaf() *x509.Certificate {
	if r.src == nil {
		return nil // the Workload API has not delivered yet
	}
	if c := r.src.Certificate(); c != nil {
		return c.Leaf
	}
	return nil
}

// checkCertificate is the "certificate" readiness check: the certificate served now is
// within its validity period (by the clock the handshakes use).
func (r *Runtime) checkCertificate(context.Context) error {
	leaf := r.leaf()
	if leaf == nil {
		return errors.New("no certificate loaded")
	}
	return r.src.CheckValidity([]*x509.Certificate{leaf})
}

// flushSpans exports the spans still queued, for up to tracing.DefaultShutdownTimeout. A
// collector that is away costs that wait, never a failed shutdown: it is logged.
func (r *Runtime) flushSpans() error {
	ctx, cancel := context.WithTimeout(context.Background(), tracing.DefaultShutdownTimeout)
	defer cancel()
	if err := r.tracing.Shutdown(ctx); err != nil {
		r.logger.Warn("spans not exported at shutdown", "err", err)
	}
	return nil
}

// Tracing returns the service's tracing.
func (r *Runtime) Tracing() *tracing.Tracing { return r.tracing }

// Source returns the reloadable TLS material.
func (r *Runtime) Source() *tlsconfig.Source { return r.src }

// Server returns the gRPC server.
func (r *Runtime) Server() *grpcserver.Server { return r.srv }

// Metrics returns the metrics registry.
func (r *Runtime) Metrics() *telemetry.Metrics { return r.metrics }

// Watcher returns the reload watcher (ReloadNow reloads every file at once).
func (r *Runtime) Watcher() *reload.Watcher { return r.watcher }

// Run listens on cfg.Listen and cfg.MetricsListen and serves until ctx ends (Serve).
func (r *Runtime) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", r.cfg.Listen)
	if err != nil {
		return errors.Join(fmt.Errorf("listen: %w", err), r.Close())
	}
	metricsLis, err := net.Listen("tcp", r.cfg.MetricsListen)
	if err != nil {
		lis.Close()
		return errors.Join(fmt.Errorf("listen for metrics: %w", err), r.Close())
	}
	return r.Serve(ctx, lis, metricsLis)
}

// Serve serves gRPC on lis and the HTTP probes on metricsLis (nil: none), and runs the
// reload watcher, the certificate expiry warnings and the Env.Go tasks, until ctx ends
// or a server fails. It then shuts down in order: /readyz answers 503 (load balancers
// stop sending), the gRPC server stops accepting and drains in-flight calls for up to
// cfg.ShutdownGrace, the background tasks stop, the HTTP server stops, and what Setup
// opened is closed. It returns nil after a shutdown caused by ctx.
func (r *Runtime) Serve(ctx context.Context, lis, metricsLis net.Listener) error {
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	var bg sync.WaitGroup
	bg.Go(func() { _ = r.watcher.Run(bgCtx) })
	// Open connections are re-checked at least once per reload interval even without a
	// reload, so that an expiry, or a reload that failed half-way, reaches them too.
	checkEvery := r.cfg.ReloadInterval
	if checkEvery <= 0 {
		checkEvery = reload.DefaultInterval
	}
	bg.Go(func() { r.srv.RunConnectionChecks(bgCtx, checkEvery) })
	// SVIDs from the Workload API live minutes and the agent rotates them: an hourly
	// "expires soon" would always fire. A rotation that fails shows as Workload API errors
	// and, once the SVID expired, in /readyz.
	if r.cfg.ExpiryWarning > 0 && !r.cfg.UsesWorkloadAPI() {
		bg.Go(func() {
			r.metrics.RunExpiryWarnings(bgCtx, r.logger, r.cfg.ExpiryWarning, telemetry.DefaultExpiryCheckInterval)
		})
	}
	for _, fn := range r.background {
		bg.Go(func() { fn(bgCtx) })
	}

	var httpErr chan error // nil without metricsLis: never ready
	if metricsLis != nil {
		httpErr = make(chan error, 1)
		go func() { httpErr <- r.http.Serve(metricsLis) }()
	}
	grpcErr := make(chan error, 1)
	go func() { grpcErr <- r.srv.Serve(lis) }()
	attrs := []any{"addr", lis.Addr().String(), "policy", r.srv.Authorizer().Policy().Name(), "reload_interval", r.cfg.ReloadInterval}
	if metricsLis != nil {
		attrs = append(attrs, "metrics_addr", metricsLis.Addr().String())
	}
	r.logger.Info(r.svc.Name+" serving", attrs...)

	var errs []error
	grpcDone, httpDone := false, metricsLis == nil
	select {
	case err := <-grpcErr:
		grpcDone = true
		errs = append(errs, err)
	case err := <-httpErr:
		httpDone = true
		errs = append(errs, err, errors.New("metrics server stopped"))
	case <-ctx.Done():
		r.logger.Info(r.svc.Name+" shutting down", "grace", r.cfg.ShutdownGrace)
	}

	r.http.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownGrace)
	defer cancel()
	r.srv.Shutdown(sctx)
	if !grpcDone {
		// A shutdown that comes before the Serve goroutine started makes it return
		// ErrServerStopped (and close lis): that is the stop we asked for, not a failure.
		if err := <-grpcErr; !errors.Is(err, grpc.ErrServerStopped) {
			errs = append(errs, err)
		}
	}
	stopBackground()
	bg.Wait()
	if !httpDone {
		hctx, hcancel := context.WithTimeout(context.Background(), r.cfg.ShutdownGrace)
		defer hcancel()
		errs = append(errs, r.http.Shutdown(hctx), <-httpErr)
	}
	errs = append(errs, r.Close())
	return errors.Join(errs...)
}

// Close releases what Setup opened (Env.OnClose), last first. Serve calls it; call it
// yourself only for a Runtime that never served. It is safe to call more than once.
func (r *Runtime) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		for i := len(r.closers) - 1; i >= 0; i-- {
			errs = append(errs, r.closers[i]())
		}
		r.closeErr = errors.Join(errs...)
		if r.closeErr != nil {
			r.closeErr = fmt.Errorf("%s: close: %w", r.svc.Name, r.closeErr)
		}
	})
	return r.closeErr
}
