package service

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/dsn"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/reload"
	"mtlsbank/internal/svidsource"
	"mtlsbank/internal/telemetry"
)

// Defaults of the flags that are the same for every service.
const (
	// DefaultRateLimit is the sustained calls per second allowed to one identity.
	DefaultRateLimit = 20
	// DefaultRateBurst is how many calls one identity may make at once.
	DefaultRateBurst = 40
	// DefaultShutdownGrace is how long in-flight calls get to finish on SIGINT/SIGTERM.
	DefaultShutdownGrace = 10 * time.Second
	// DefaultCRLMaxStaleness is how long past its nextUpdate a CRL is still used.
	DefaultCRLMaxStaleness = 6 * time.Hour
	// MaxCRLMaxStaleness bounds --crl-max-staleness: a larger value would in effect turn
	// the freshness check off.
	MaxCRLMaxStaleness = 7 * 24 * time.Hour
)

// Config is the deployed configuration every bank service shares. RegisterFlags binds
// each field to a flag, and ParseFlags falls back to the environment variable
// BANK_<FLAG> (upper snake case) for every flag not on the command line.
type Config struct {
	Listen        string // gRPC listen address
	MetricsListen string // HTTP /metrics, /healthz, /readyz listen address
	DB            string // SQLite database file or postgres:// URL (see package dsn)
	// Migrate applies the database's schema migrations (and, on PostgreSQL, the
	// grants of DBRuntimeRole) and exits: the migration step, run as the role that
	// owns the schema. A service serving on PostgreSQL never changes the schema.
	Migrate bool
	// DBRuntimeRole, with Migrate on PostgreSQL, is the role the replicas serve as:
	// it is granted exactly what the service needs on its tables.
	DBRuntimeRole string
	Cert          string // service certificate chain (PEM), leaf first
	Key           string // service private key (PEM)
	CA            string // trust bundle (PEM): roots are the anchors, intermediates chain material
	Intermediates string // intermediate CA certificates (PEM), chain material; empty: none
	CRL           string // CRL bundle (PEM, one CRL per CA, or one DER CRL); empty: none
	CRLState      string // highest CRL number taken per issuer; empty: next to DB
	// CRLMaxStaleness is how long past its nextUpdate a CRL is still used; after that
	// peers under the CAs it covers are refused.
	CRLMaxStaleness time.Duration
	// CRLRequireAll refuses a peer whose chain holds a CA that has no CRL in --crl (on by
	// default; without --crl revocation is off and it has no effect, see CRLRequired).
	CRLRequireAll bool
	Policy        string // authorization policy file; empty: the embedded default

	// SPIFFEEndpoint is the SPIFFE Workload API address (unix:///path/to/agent.sock) the
	// certificate and trust bundle come from instead of Cert, Key, CA, Intermediates and
	// CRL, which must then be empty; empty: the files.
	SPIFFEEndpoint string
	// SPIFFEStartTimeout is how long the start waits for the first X.509-SVID.
	SPIFFEStartTimeout time.Duration

	ReloadInterval          time.Duration // how often files are checked for changes; 0: SIGHUP only
	HandshakeTimeout        time.Duration // TLS handshake and HTTP/2 preface of a new connection
	MaxConnectionAge        time.Duration // a connection older than this reconnects (re-handshakes); 0: never
	MaxConnectionAgeGrace   time.Duration // calls past the age get this long before the connection closes
	MaxRecvMsgSize          ByteSize      // largest request message accepted
	MaxConcurrentStreams    uint          // concurrent calls per connection
	MaxStreamsPerIdentity   int           // open streaming calls per caller identity; 0: no cap
	MaxStreams              int           // open streaming calls in all; 0: no cap
	KeepaliveMinTime        time.Duration // shortest interval between client pings tolerated
	RateLimit               float64       // calls per second per identity; 0: no limit
	RateBurst               int           // calls at once per identity
	RateLimitExempt         IDList        // identities without a rate limit
	DefaultDeadline         time.Duration // deadline of a unary call that has none; 0: none
	ExpiryWarning           time.Duration // warn when our certificate expires within this; 0: never
	ShutdownGrace           time.Duration // how long in-flight calls get to finish on shutdown
	MaxConnections          int           // concurrent connections in all (lowered to fit the fd limit)
	MaxConnectionsPerSource int           // concurrent connections per source IP; 0: no per-source cap
	MaxHandshaking          int           // connections not yet authenticated (mTLS handshake running), in all
	MaxHandshakingPerSource int           // the same per source IP; 0: no per-source cap

	AuditFile               string        // audit trail (JSON lines); empty: next to DB
	AuditKey                string        // Ed25519 or ECDSA P-256 key signing the audit checkpoints (PEM, 0600)
	AuditFlushInterval      time.Duration // longest a read's audit record stays in memory (what a crash may lose)
	AuditCheckpointInterval time.Duration // how often a checkpoint is signed while records come
	AuditMaxFileSize        ByteSize      // size at which the audit file is rotated
}

// AuditFilePath returns where the audit trail is kept: --audit-file, or next to the
// database file (data/NAME.db -> data/NAME.audit.jsonl).
func (c Config) AuditFilePath() string {
	if c.AuditFile != "" {
		return c.AuditFile
	}
	return strings.TrimSuffix(c.DB, filepath.Ext(c.DB)) + ".audit.jsonl"
}

// CRLStatePath returns where the CRL state is kept: --crl-state, or next to the
// database file (data/NAME.db -> data/NAME.crl-state.json).
func (c Config) CRLStatePath() string {
	if c.CRLState != "" {
		return c.CRLState
	}
	return strings.TrimSuffix(c.DB, filepath.Ext(c.DB)) + ".crl-state.json"
}

// CRLRequired reports whether a peer whose chain holds a CA without a CRL is refused:
// --crl-require-all with a --crl to require them of. Without --crl nothing is revoked.
func (c Config) CRLRequired() bool { return c.CRL != "" && c.CRLRequireAll }

// Defaults are what differs between services' flag defaults.
type Defaults struct {
	// Name is the service's name: data/NAME.db and certs/dev/NAME.{crt,key} by default.
	Name string
	// Listen and MetricsListen are the default addresses.
	Listen, MetricsListen string
	// RateLimitExempt are the identities not rate limited by default.
	RateLimitExempt []spiffeid.ID
}

// RegisterFlags defines the shared flags on fs, bound to c, with d's defaults. Call it
// before ParseFlags; a service defines its own flags on the same fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet, d Defaults) {
	fs.StringVar(&c.Listen, "listen", d.Listen, "gRPC listen address")
	fs.StringVar(&c.MetricsListen, "metrics-listen", d.MetricsListen, "HTTP listen address of /metrics, /healthz and /readyz (no TLS: keep it private)")
	fs.StringVar(&c.DB, "db", "data/"+d.Name+".db", "SQLite database file, or a postgres:// URL: no password in it (PGPASSFILE, mode 0600, or a client certificate), and sslmode=verify-full with sslrootcert unless the server is on this machine")
	fs.BoolVar(&c.Migrate, "migrate", false, "apply the database schema migrations and exit, as the role that owns the schema (on PostgreSQL the service never changes the schema itself: run this after every upgrade; SQLite is also migrated at start)")
	fs.StringVar(&c.DBRuntimeRole, "db-runtime-role", "", "with --migrate on PostgreSQL: the role the service runs as, granted exactly what it needs on its tables (read and write its rows, no DDL, no DELETE)")
	fs.StringVar(&c.Cert, "cert", "certs/dev/"+d.Name+".crt", "service certificate chain (PEM), reloaded on change")
	fs.StringVar(&c.Key, "key", "certs/dev/"+d.Name+".key", "service private key (PEM), reloaded with --cert")
	fs.StringVar(&c.CA, "ca", "certs/dev/ca.crt", "CA trust bundle (PEM), reloaded on change")
	fs.StringVar(&c.Intermediates, "intermediates", "certs/dev/intermediates.crt", "intermediate CA certificates (PEM), each chaining to a root of --ca; reloaded on change; empty for none")
	fs.StringVar(&c.CRL, "crl", "certs/dev/crl.pem", "CRL bundle (PEM, one CRL per CA), reloaded on change; empty for none")
	fs.StringVar(&c.CRLState, "crl-state", "", "file remembering the highest CRL number taken per CA, so that an older CRL is refused after a restart too; empty for next to --db")
	fs.BoolVar(&c.CRLRequireAll, "crl-require-all", true, "refuse a peer whose chain holds a CA without a CRL in --crl (as openssl -crl_check_all); false only for a CA that publishes no CRL, whose certificates are then never checked for revocation")
	fs.DurationVar(&c.CRLMaxStaleness, "crl-max-staleness", DefaultCRLMaxStaleness, "how long past its nextUpdate a CRL is still used; after that, peers under the CAs it covers are refused")
	fs.StringVar(&c.SPIFFEEndpoint, "spiffe-endpoint", "", "take the certificate and trust bundle from the SPIFFE Workload API at this address (unix:///path/to/agent.sock) "+
		"instead of --cert, --key, --ca, --intermediates and --crl, which must then not be given; when empty, "+WorkloadAPISocketEnv+" is used if no certificate flag is given")
	fs.DurationVar(&c.SPIFFEStartTimeout, "spiffe-start-timeout", svidsource.DefaultStartTimeout, "how long the start waits for an X.509-SVID from --spiffe-endpoint before it gives up")
	fs.StringVar(&c.Policy, "policy", "", "authorization policy YAML, reloaded on change; empty for the embedded default (fixed)")
	fs.DurationVar(&c.ReloadInterval, "reload-interval", reload.DefaultInterval, "how often the files above are checked for changes; 0 for SIGHUP only")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", grpcserver.DefaultConnectionTimeout, "time a new connection gets to complete its TLS handshake")
	fs.DurationVar(&c.MaxConnectionAge, "max-connection-age", grpcserver.DefaultMaxConnectionAge, "age at which a connection is asked to reconnect (and handshake again); 0 for never")
	fs.DurationVar(&c.MaxConnectionAgeGrace, "max-connection-age-grace", grpcserver.DefaultMaxConnectionAgeGrace, "time calls still running on a connection past its age get before it closes")
	c.MaxRecvMsgSize = grpcserver.DefaultMaxRecvMsgSize
	fs.Var(&c.MaxRecvMsgSize, "max-recv-msg-size", "largest request message accepted (bytes, or with KiB/MiB)")
	fs.UintVar(&c.MaxConcurrentStreams, "max-concurrent-streams", grpcserver.DefaultMaxConcurrentStreams, "concurrent calls per connection")
	fs.IntVar(&c.MaxStreamsPerIdentity, "max-streams-per-identity", grpcserver.DefaultMaxStreamsPerIdentity, "streaming calls (WatchLedger, health Watch) one caller identity may hold open at once over all its connections; more are refused RESOURCE_EXHAUSTED (0 for no cap)")
	fs.IntVar(&c.MaxStreams, "max-streams", grpcserver.DefaultMaxStreams, "streaming calls open at once in all (0 for no cap)")
	fs.DurationVar(&c.KeepaliveMinTime, "keepalive-min-time", grpcserver.DefaultKeepaliveMinTime, "shortest interval between client keepalive pings; a client pinging faster is disconnected")
	fs.Float64Var(&c.RateLimit, "rate-limit", DefaultRateLimit, "calls per second allowed to each client identity (ResourceExhausted beyond); 0 for no limit")
	fs.IntVar(&c.RateBurst, "rate-burst", DefaultRateBurst, "calls each client identity may make at once")
	c.RateLimitExempt = append(IDList(nil), d.RateLimitExempt...)
	fs.Var(&c.RateLimitExempt, "rate-limit-exempt", "comma-separated SPIFFE IDs that are not rate limited")
	fs.DurationVar(&c.DefaultDeadline, "default-deadline", grpcserver.DefaultDeadline, "deadline of a unary call that arrives without one; 0 for none")
	fs.DurationVar(&c.ExpiryWarning, "expiry-warning", telemetry.DefaultExpiryThreshold, "log a warning (hourly) when the service certificate expires within this; 0 for never")
	fs.IntVar(&c.MaxConnections, "max-connections", grpcserver.DefaultMaxConnections, "concurrent connections in all, handshaking ones included; refused at accept beyond (lowered to the file descriptor limit less a reserve)")
	fs.IntVar(&c.MaxConnectionsPerSource, "max-connections-per-source", grpcserver.DefaultMaxConnectionsPerSource, "concurrent connections from one source IP address (0 for no cap; behind a load balancer that hides client addresses, set it to --max-connections)")
	fs.IntVar(&c.MaxHandshaking, "max-handshaking", grpcserver.DefaultMaxHandshaking, "concurrent connections whose mutual-TLS handshake has not completed, the strangers' share of --max-connections; when full, the oldest one of the source holding the most gives way (must be below --max-connections; lowered with it)")
	fs.IntVar(&c.MaxHandshakingPerSource, "max-handshaking-per-source", grpcserver.DefaultMaxHandshakingPerSource, "concurrent handshaking connections from one source IP address (0 for no cap; behind a load balancer that hides client addresses, set it to --max-handshaking)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", DefaultShutdownGrace, "time in-flight calls get to finish on SIGINT/SIGTERM")
	fs.StringVar(&c.AuditFile, "audit-file", "", "audit trail: one JSON line per call, hash-chained, rotated by size (NAME.000000000001.jsonl); empty for next to --db (data/"+d.Name+".audit.jsonl)")
	fs.StringVar(&c.AuditKey, "audit-key", "certs/dev/"+d.Name+"-audit.key", "Ed25519 or ECDSA P-256 private key (PEM, mode 0600) signing the audit trail's checkpoints; certgen writes it with its public key (.pub) for bankctl audit verify")
	fs.DurationVar(&c.AuditFlushInterval, "audit-flush-interval", auditlog.DefaultFlushInterval, "longest an allowed read's audit record waits in memory before it is written and synced (a crash loses at most this much of them); denials and calls that change state always wait for theirs")
	fs.DurationVar(&c.AuditCheckpointInterval, "audit-checkpoint-interval", auditlog.DefaultCheckpointInterval, "how often a signed checkpoint of the audit trail is written (to the trail, its .checkpoint file and the log) while calls come")
	c.AuditMaxFileSize = auditlog.DefaultMaxFileSize
	fs.Var(&c.AuditMaxFileSize, "audit-max-file-size", "size at which the audit file is rotated (bytes, or with KiB/MiB)")
}

// EnvVar returns the environment variable of a flag: BANK_ and the name in upper snake case.
func EnvVar(flagName string) string {
	return "BANK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ParseFlags parses args with fs, then sets every flag not given on the command line from
// its environment variable (EnvVar) when getenv returns it non-empty: a flag beats the
// environment, which beats the default. It rejects positional arguments. The usage text
// of every flag names its variable.
func ParseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	fs.VisitAll(func(f *flag.Flag) {
		if env := EnvVar(f.Name); !strings.Contains(f.Usage, env) {
			f.Usage += " (env " + env + ")"
		}
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvVar(f.Name)
		v := getenv(env)
		if given[f.Name] || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
		}
	})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return chooseIdentitySource(fs, getenv)
}

// WorkloadAPISocketEnv is the standard variable naming the SPIFFE Workload API address.
const WorkloadAPISocketEnv = "SPIFFE_ENDPOINT_SOCKET"

// certificateFlags are the flags of the file-based identity, which --spiffe-endpoint
// replaces.
var certificateFlags = []string{"cert", "key", "ca", "intermediates", "crl"}

// chooseIdentitySource settles where the certificate comes from, once the flags and their
// BANK_ variables are parsed. Without --spiffe-endpoint (or BANK_SPIFFE_ENDPOINT), the
// standard SPIFFE_ENDPOINT_SOCKET sets it, but only when no certificate flag was given: a
// variable left in the environment never overrides files asked for. With an endpoint, the
// certificate flags not given lose their defaults (certs/dev/...); one given stays, and
// Validate refuses the pair.
func chooseIdentitySource(fs *flag.FlagSet, getenv func(string) string) error {
	endpoint := fs.Lookup("spiffe-endpoint")
	if endpoint == nil {
		return nil
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	files := false
	for _, name := range certificateFlags {
		files = files || given[name]
	}
	if endpoint.Value.String() == "" && !files {
		if v := getenv(WorkloadAPISocketEnv); v != "" {
			if err := fs.Set("spiffe-endpoint", v); err != nil {
				return fmt.Errorf("%s=%q: %w", WorkloadAPISocketEnv, v, err)
			}
		}
	}
	if endpoint.Value.String() == "" {
		return nil
	}
	for _, name := range certificateFlags {
		if f := fs.Lookup(name); f != nil && !given[name] {
			if err := f.Value.Set(""); err != nil {
				return err
			}
		}
	}
	return nil
}

// UsesWorkloadAPI reports whether the identity comes from the SPIFFE Workload API.
func (c Config) UsesWorkloadAPI() bool { return c.SPIFFEEndpoint != "" }

// validateIdentitySource checks that the identity comes from one place: the files (cert,
// key and CA bundle required) or the Workload API (no certificate file at all).
func (c Config) validateIdentitySource() []error {
	if !c.UsesWorkloadAPI() {
		var errs []error
		for _, f := range []struct{ name, value string }{{"cert", c.Cert}, {"key", c.Key}, {"ca", c.CA}} {
			if f.value == "" {
				errs = append(errs, fmt.Errorf("--%s must not be empty (or take the identity from --spiffe-endpoint)", f.name))
			}
		}
		return errs
	}
	var files []string
	for _, f := range []struct{ name, value string }{
		{"cert", c.Cert}, {"key", c.Key}, {"ca", c.CA}, {"intermediates", c.Intermediates}, {"crl", c.CRL},
	} {
		if f.value != "" {
			files = append(files, "--"+f.name)
		}
	}
	var errs []error
	if len(files) > 0 {
		errs = append(errs, fmt.Errorf("--spiffe-endpoint %s and %s are two sources of the certificate: give one or the other "+
			"(the Workload API brings the certificate and the trust bundle; revocation there is SVID expiry and deleting the registration entry)",
			c.SPIFFEEndpoint, strings.Join(files, ", ")))
	}
	if err := svidsource.ValidateEndpoint(c.SPIFFEEndpoint); err != nil {
		errs = append(errs, fmt.Errorf("--spiffe-endpoint: %w", err))
	}
	if c.SPIFFEStartTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--spiffe-start-timeout %s must be positive", c.SPIFFEStartTimeout))
	}
	return errs
}

// validateDB checks --db (dsn.Parse, and dsn.Check's rules for PostgreSQL) and
// the flags of the migration step.
func (c Config) validateDB() error {
	if c.DB == "" {
		return nil // reported with the other empty flags
	}
	d, err := dsn.Parse(c.DB)
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	if err := d.Check(); err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	switch {
	case c.DBRuntimeRole != "" && !c.Migrate:
		return errors.New("--db-runtime-role goes with --migrate: the migration step grants it its privileges")
	case c.DBRuntimeRole != "" && d.Engine != dsn.Postgres:
		return errors.New("--db-runtime-role is for PostgreSQL: an SQLite file has no roles")
	}
	return nil
}

// Validate reports every value that cannot work, each naming its flag. With
// --migrate only the database flags matter.
func (c Config) Validate() error {
	if c.Migrate {
		if c.DB == "" {
			return errors.New("--db must not be empty")
		}
		return c.validateDB()
	}
	errs := c.validateIdentitySource()
	for _, f := range []struct{ name, value string }{
		{"listen", c.Listen}, {"metrics-listen", c.MetricsListen}, {"db", c.DB},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("--%s must not be empty", f.name))
		}
	}
	for _, f := range []struct {
		name     string
		value    time.Duration
		positive bool
	}{
		{"reload-interval", c.ReloadInterval, false},
		{"handshake-timeout", c.HandshakeTimeout, true},
		{"max-connection-age", c.MaxConnectionAge, false},
		{"max-connection-age-grace", c.MaxConnectionAgeGrace, false},
		{"keepalive-min-time", c.KeepaliveMinTime, false},
		{"default-deadline", c.DefaultDeadline, false},
		{"expiry-warning", c.ExpiryWarning, false},
		{"shutdown-grace", c.ShutdownGrace, true},
	} {
		switch {
		case f.positive && f.value <= 0:
			errs = append(errs, fmt.Errorf("--%s %s must be positive", f.name, f.value))
		case f.value < 0:
			errs = append(errs, fmt.Errorf("--%s %s must not be negative", f.name, f.value))
		}
	}
	if c.CRLMaxStaleness < 0 || c.CRLMaxStaleness > MaxCRLMaxStaleness {
		errs = append(errs, fmt.Errorf("--crl-max-staleness %s must be between 0 and %s", c.CRLMaxStaleness, MaxCRLMaxStaleness))
	}
	errs = append(errs, c.validateDB())
	if c.CRL != "" && c.CRLState == "" && strings.Contains(c.DB, "://") {
		errs = append(errs, errors.New("--crl-state must be set when --db is not a file"))
	}
	if c.AuditFile == "" && strings.Contains(c.DB, "://") {
		errs = append(errs, errors.New("--audit-file must be set when --db is not a file"))
	}
	if c.AuditKey == "" {
		errs = append(errs, errors.New("--audit-key must not be empty: the audit trail's checkpoints are signed"))
	}
	if c.AuditFlushInterval < 0 || c.AuditFlushInterval > time.Minute {
		errs = append(errs, fmt.Errorf("--audit-flush-interval %s must be between 0 and 1m", c.AuditFlushInterval))
	}
	if c.AuditCheckpointInterval <= 0 {
		errs = append(errs, fmt.Errorf("--audit-checkpoint-interval %s must be positive", c.AuditCheckpointInterval))
	}
	if c.AuditMaxFileSize < 1<<10 {
		errs = append(errs, fmt.Errorf("--audit-max-file-size %d must be at least 1KiB", c.AuditMaxFileSize))
	}
	if c.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("--max-connections %d must be at least 1", c.MaxConnections))
	}
	if c.MaxConnectionsPerSource < 0 {
		errs = append(errs, fmt.Errorf("--max-connections-per-source %d must not be negative", c.MaxConnectionsPerSource))
	}
	if c.MaxHandshaking < 1 || c.MaxHandshaking >= c.MaxConnections {
		errs = append(errs, fmt.Errorf("--max-handshaking %d must be at least 1 and below --max-connections %d, so that strangers cannot take every slot",
			c.MaxHandshaking, c.MaxConnections))
	}
	if c.MaxHandshakingPerSource < 0 {
		errs = append(errs, fmt.Errorf("--max-handshaking-per-source %d must not be negative", c.MaxHandshakingPerSource))
	}
	if c.MaxRecvMsgSize <= 0 {
		errs = append(errs, fmt.Errorf("--max-recv-msg-size %d must be positive", c.MaxRecvMsgSize))
	}
	if c.MaxStreamsPerIdentity < 0 || c.MaxStreams < 0 {
		errs = append(errs, fmt.Errorf("--max-streams-per-identity %d and --max-streams %d must not be negative", c.MaxStreamsPerIdentity, c.MaxStreams))
	}
	if c.MaxConcurrentStreams < 1 || c.MaxConcurrentStreams > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("--max-concurrent-streams %d must be between 1 and %d", c.MaxConcurrentStreams, uint32(math.MaxUint32)))
	}
	switch {
	case math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) || c.RateLimit < 0:
		errs = append(errs, fmt.Errorf("--rate-limit %v must be a number, 0 or more", c.RateLimit))
	case c.RateLimit > 0 && c.RateBurst < 1:
		errs = append(errs, fmt.Errorf("--rate-burst %d must be at least 1", c.RateBurst))
	}
	return errors.Join(errs...)
}

// ByteSize is a size in bytes, written as a plain number or with a B, KiB or MiB suffix.
type ByteSize int

// byteUnits are the suffixes ByteSize accepts, longest first.
var byteUnits = []struct {
	suffix string
	n      int64
}{{"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// String writes the size in the largest unit that divides it.
func (b *ByteSize) String() string {
	if b == nil {
		return "0"
	}
	for _, u := range byteUnits[:2] {
		if *b != 0 && int64(*b)%u.n == 0 {
			return strconv.FormatInt(int64(*b)/u.n, 10) + u.suffix
		}
	}
	return strconv.Itoa(int(*b))
}

// Set parses "4194304", "4MiB", "512KiB" or "100B".
func (b *ByteSize) Set(s string) error {
	text, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(text, u.suffix) {
			text, mult = strings.TrimSpace(strings.TrimSuffix(text, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt32/mult {
		return fmt.Errorf("size %q: want a number of bytes up to 2GiB, optionally with B, KiB or MiB", s)
	}
	*b = ByteSize(n * mult)
	return nil
}

// IDList is a comma-separated list of SPIFFE IDs.
type IDList []spiffeid.ID

// String joins the IDs with commas.
func (l *IDList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, id := range *l {
		parts[i] = id.String()
	}
	return strings.Join(parts, ",")
}

// Set replaces the list with the comma-separated IDs of s ("" empties it).
func (l *IDList) Set(s string) error {
	var out IDList
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, err := spiffeid.FromString(part)
		if err != nil {
			return fmt.Errorf("SPIFFE ID %q: %w", part, err)
		}
		out = append(out, id)
	}
	*l = out
	return nil
}
