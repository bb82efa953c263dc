package payments

import (
	"log/slog"
	"time"
)

// Defaults of the options of NewService.
const (
	// DefaultCallTimeout bounds one call to the accounts service, retries included.
	DefaultCallTimeout = 5 * time.Second
	// DefaultRecoveryInterval is how often RunRecovery looks for pending payments.
	DefaultRecoveryInterval = 10 * time.Second
	// DefaultCustomerLimits is the per-payment limit of customers unless
	// WithCustomerLimits says otherwise.
	DefaultCustomerLimits = "EUR:1000.00,USD:1000.00"
	// DefaultCustomerDailyLimits is what a customer may order per currency over
	// any DailyWindow unless WithCustomerDailyLimits says otherwise.
	DefaultCustomerDailyLimits = "EUR:5000.00,USD:5000.00"
	// DailyWindow is the sliding window of the customer daily limits.
	DailyWindow = 24 * time.Hour
)

// Option configures NewService.
type Option func(*options)

type options struct {
	limits           Limits
	dailyLimits      Limits
	revocation       RevocationChecker
	callTimeout      time.Duration
	recoveryInterval time.Duration
	logger           *slog.Logger
	hooks            Hooks
	clock            func() time.Time
}

// Hooks are called at the points where a crash is most dangerous, so that tests
// (and only tests) can crash the process there. Nil hooks are skipped.
type Hooks struct {
	// AfterRecord runs once a new payment is committed as PENDING, before the
	// accounts service is called.
	AfterRecord func(Payment)
	// AfterTransfer runs once the accounts service answered a transfer, before the
	// outcome is recorded.
	AfterTransfer func(Payment)
}

func newOptions(opts []Option) options {
	limits, _ := ParseLimits(DefaultCustomerLimits)     // a constant; TestDefaultCustomerLimits proves it parses
	daily, _ := ParseLimits(DefaultCustomerDailyLimits) // likewise
	o := options{
		limits:           limits,
		dailyLimits:      daily,
		callTimeout:      DefaultCallTimeout,
		recoveryInterval: DefaultRecoveryInterval,
		logger:           slog.New(slog.DiscardHandler),
		clock:            time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithCustomerLimits sets the per-payment limits of callers whose authorization is
// limited to their own accounts (default DefaultCustomerLimits).
func WithCustomerLimits(l Limits) Option {
	return func(o *options) { o.limits = l }
}

// WithCustomerDailyLimits sets, per currency, how much a caller whose authorization
// is limited to its own accounts may order over any DailyWindow, counting its
// PENDING and COMPLETED payments (default DefaultCustomerDailyLimits). A currency
// without a daily limit is refused to such callers, as one without a per-payment
// limit is.
func WithCustomerDailyLimits(l Limits) Option {
	return func(o *options) { o.dailyLimits = l }
}

// WithRevocationChecker makes the service void, instead of carrying out, the
// transfer of a PENDING payment whose creator's certificate rc reports revoked, and
// record the ledger's answer: FAILED if the void settled the key, COMPLETED if an
// earlier attempt had moved the money (default: no check).
func WithRevocationChecker(rc RevocationChecker) Option {
	return func(o *options) { o.revocation = rc }
}

// WithCallTimeout bounds each call to the accounts service (default
// DefaultCallTimeout). Values <= 0 keep the default.
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.callTimeout = d
		}
	}
}

// WithRecoveryInterval sets how often RunRecovery drives pending payments (default
// DefaultRecoveryInterval). Values <= 0 keep the default.
func WithRecoveryInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.recoveryInterval = d
		}
	}
}

// WithLogger makes the service log to l (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithHooks installs fault-injection hooks for crash tests.
func WithHooks(h Hooks) Option {
	return func(o *options) { o.hooks = h }
}

// WithClock makes the service read the time from now (default time.Now): when
// payments are created and finished, the rolling limit's window, and leases.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.clock = now
		}
	}
}
