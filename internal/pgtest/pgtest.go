// Package pgtest gives tests a fresh PostgreSQL database each: from a private
// throwaway cluster that it starts once per test binary, or from the server that
// BANK_TEST_POSTGRES names.
//
// A package that uses it has
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and calls NewDatabase in the tests that need PostgreSQL. The cluster starts on
// the first NewDatabase of the binary (a run whose tests need none starts none)
// and Main stops it after the tests.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/migrate"
	"mtlsbank/internal/pgcluster"
	"mtlsbank/internal/pki"
)

// Environment variables read by the harness.
const (
	// EnvURL names an existing server (a postgres:// URL of a role that may
	// CREATE DATABASE) to use instead of starting a cluster.
	EnvURL = "BANK_TEST_POSTGRES"
	// EnvRequire set to 1 turns "no PostgreSQL here, skip" into a test failure,
	// so that CI cannot pass by skipping.
	EnvRequire = "BANK_REQUIRE_POSTGRES"
	// EnvBinDir overrides where initdb, pg_ctl and postgres are looked for.
	EnvBinDir = pgcluster.EnvBinDir
	// EnvDurable set to 1 starts the cluster with fsync and full_page_writes on,
	// as production runs, for benchmarks of durable commits (tests run without).
	EnvDurable = "BANK_TEST_PG_DURABLE"
)

// DefaultBinDir is where Debian's postgresql-15 package installs the server.
const DefaultBinDir = pgcluster.DefaultBinDir

// certGroup is the group role of the harness's cluster whose members
// authenticate with a client certificate (NewCertRole).
const certGroup = "pgtest_cert"

// harness is the one server of the test binary. Package-level because a test
// binary has one TestMain and many tests that share the cluster; it is only
// written under once.
var harness struct {
	once    sync.Once
	srv     *server // nil if unavailable
	why     string  // why srv is nil
	skipped bool    // a test skipped because of why
	mu      sync.Mutex
	// leftRoles are roles a test's cleanup could not drop yet (a database of
	// another test still referred to them); Main drops them at the end.
	leftRoles []string
}

// Main runs the tests of m and then stops the cluster the harness started, if
// it started one. It returns the exit code for os.Exit. If tests were skipped
// for want of PostgreSQL it prints one line saying why.
func Main(m *testing.M) int {
	code := m.Run()
	harness.mu.Lock()
	skipped := harness.skipped
	harness.mu.Unlock()
	if skipped {
		fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL tests skipped: %s (set %s=1 to make this a failure)\n", harness.why, EnvRequire)
	}
	if srv := harness.srv; srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, r := range harness.leftRoles {
			_ = srv.admin(ctx, "postgres", "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize())
		}
		cancel()
		if err := srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// NewDatabase creates a database with a random name for this test alone and
// returns its postgres:// URL (a superuser's, with the password). The database
// is dropped when the test ends. Without a server it skips the test, or fails
// it if BANK_REQUIRE_POSTGRES=1.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	srv := get(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "test_" + pgcluster.RandomHex(8)
	if err := srv.admin(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends the sessions a failed test may have left open.
		if err := srv.admin(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return srv.databaseURL(name)
}

// DatabaseName returns the database a URL of NewDatabase names.
func DatabaseName(tb testing.TB, rawURL string) string {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatalf("pgtest: not a URL") // never quote it: it holds a password
	}
	return strings.TrimPrefix(u.Path, "/")
}

// Admin runs statements as the administrator (a superuser) on database db
// ("postgres" for the cluster-wide ones: roles, databases), failing the test on
// an error.
func Admin(tb testing.TB, db string, statements ...string) {
	tb.Helper()
	admin(tb, get(tb), db, statements...)
}

func admin(tb testing.TB, srv *server, db string, statements ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, st := range statements {
		if err := srv.admin(ctx, db, st); err != nil {
			tb.Fatalf("pgtest: %s: %v", st, err)
		}
	}
}

// Role is a login role a test created. Its password is not in its URLs: it is
// in the harness's password file (PassFile), where libpq and pgx look for it
// through PGPASSFILE or the passfile parameter.
type Role struct {
	// Name is the role's name, quoted in SQL with pgx.Identifier.
	Name     string
	password string
	srv      *server
}

// Password is the role's password ("" for a CertRole), for tests that check it
// never shows.
func (r Role) Password() string { return r.password }

// NewRole creates a login role with a random name and password (in PassFile),
// without any privilege, dropped when the test ends.
func NewRole(tb testing.TB) Role {
	tb.Helper()
	return newRole(tb, get(tb), true)
}

// newRole creates a login role, with a password in the password file or
// without any.
func newRole(tb testing.TB, srv *server, withPassword bool) Role {
	tb.Helper()
	r := Role{Name: "role_" + pgcluster.RandomHex(6), srv: srv}
	create := "CREATE ROLE " + pgx.Identifier{r.Name}.Sanitize() + " LOGIN"
	if withPassword {
		r.password = pgcluster.RandomHex(16)
		create += " PASSWORD '" + r.password + "'"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.admin(ctx, "postgres", create); err != nil {
		tb.Fatalf("pgtest: create role: %v", err)
	}
	tb.Cleanup(func() { dropRole(srv, r.Name) })
	if withPassword {
		if err := srv.addPassword(r.Name, r.password); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
	}
	return r
}

// dropRole drops a role, or leaves it to Main when a database still refers to
// it (cleanups run in reverse order: a database created after the role goes
// later).
func dropRole(srv *server, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.admin(ctx, "postgres", "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		harness.mu.Lock()
		harness.leftRoles = append(harness.leftRoles, name)
		harness.mu.Unlock()
	}
}

// URL is the URL of the role on database db, without a password, TLS off:
// postgres://NAME@HOST:PORT/DB?sslmode=disable&passfile=PASSFILE.
func (r Role) URL(db string) string {
	u := r.srv.roleURL(r.Name, db)
	q := u.Query()
	q.Set("sslmode", "disable")
	q.Set("passfile", r.srv.passfile)
	u.RawQuery = q.Encode()
	return u.String()
}

// Provision creates a database for a service with least privilege, as
// migrate.ProvisionSQL says: owned by owner (the migration role), CONNECT for
// runtime only. It is dropped when the test ends; create the roles first, so
// that they outlive it.
func Provision(tb testing.TB, owner, runtime Role) string {
	tb.Helper()
	return provision(tb, get(tb), owner, runtime)
}

func provision(tb testing.TB, srv *server, owner, runtime Role) string {
	tb.Helper()
	name := "svc_" + pgcluster.RandomHex(6)
	admin(tb, srv, "postgres", migrate.ProvisionSQL(name, owner.Name, runtime.Name)...)
	tb.Cleanup(func() { admin(tb, srv, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return name
}

// PassFile is the harness's password file (libpq's format, mode 0600), with a
// line for every role NewRole made: give it to a child process as PGPASSFILE.
func PassFile(tb testing.TB) string {
	tb.Helper()
	return get(tb).passfile
}

// CertRole is a role that can only log in over TLS with its client
// certificate (pg_hba "cert": the certificate's CN is the role's name).
type CertRole struct {
	Role
	// CertFile and KeyFile are the role's client certificate and key (0600).
	CertFile, KeyFile string
}

// NewCertRole creates a login role without a password that authenticates with a
// client certificate from the cluster's CA. The harness's own cluster has TLS (a server certificate
// for localhost and 127.0.0.1 from that CA, CAFile); a server named by
// BANK_TEST_POSTGRES has none of that, and the test is skipped.
func NewCertRole(tb testing.TB) CertRole {
	tb.Helper()
	srv := get(tb)
	if srv.cluster == nil {
		tb.Skipf("pgtest: TLS tests need the harness's own cluster, not %s", EnvURL)
	}
	r := newRole(tb, srv, false)
	Admin(tb, "postgres", "GRANT "+certGroup+" TO "+pgx.Identifier{r.Name}.Sanitize())
	leaf, err := srv.cluster.IssueClient(r.Name)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	key, err := pki.EncodeKeyPEM(leaf.Key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	cr := CertRole{Role: r, CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key")}
	if err := os.WriteFile(cr.CertFile, pki.EncodeCertsPEM(leaf.Chain...), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(cr.KeyFile, key, 0o600); err != nil {
		tb.Fatal(err)
	}
	return cr
}

// CAFile is the PEM file of the CA of the harness's cluster's TLS certificates
// (see NewCertRole).
func CAFile(tb testing.TB) string {
	tb.Helper()
	srv := get(tb)
	if srv.cluster == nil {
		tb.Skipf("pgtest: TLS tests need the harness's own cluster, not %s", EnvURL)
	}
	return srv.cluster.CAFile()
}

// TLSURL is the URL of the role on database db with sslmode=verify-full against
// rootCert (a CA file), its client certificate, no password, and the host
// 127.0.0.1, which the server certificate names.
func (r CertRole) TLSURL(db, rootCert string) string {
	u := r.srv.roleURL(r.Name, db)
	q := u.Query()
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", rootCert)
	q.Set("sslcert", r.CertFile)
	q.Set("sslkey", r.KeyFile)
	u.RawQuery = q.Encode()
	return u.String()
}

// get returns the server, starting it on first use, or ends the test.
func get(tb testing.TB) *server {
	tb.Helper()
	harness.once.Do(start)
	if harness.srv != nil {
		return harness.srv
	}
	if os.Getenv(EnvRequire) == "1" {
		tb.Fatalf("pgtest: %s=1 but PostgreSQL is unavailable: %s", EnvRequire, harness.why)
	}
	harness.mu.Lock()
	harness.skipped = true
	harness.mu.Unlock()
	tb.Skipf("pgtest: no PostgreSQL: %s", harness.why)
	return nil
}

func start() {
	srv, err := startServer(context.Background())
	if err != nil {
		harness.why = err.Error()
		return
	}
	harness.srv = srv
}

// server is either a cluster the harness started (cluster != nil) or an
// external one.
type server struct {
	adminURL *url.URL
	cluster  *pgcluster.Cluster
	// clientDir holds the password file.
	clientDir string
	passfile  string
	passMu    sync.Mutex
	passwords []string // the lines of passfile
}

func startServer(ctx context.Context) (_ *server, err error) {
	dir, err := os.MkdirTemp("", "pgtest-client-")
	if err != nil {
		return nil, err
	}
	s := &server{clientDir: dir, passfile: filepath.Join(dir, "pgpass")}
	defer func() {
		if err != nil {
			_ = s.stop()
		}
	}()
	if err := os.WriteFile(s.passfile, nil, 0o600); err != nil {
		return nil, err
	}
	if raw := os.Getenv(EnvURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// The URL may hold a password: never print it.
			return nil, fmt.Errorf("%s is not a postgres:// URL", EnvURL)
		}
		s.adminURL = u
		if err := s.admin(ctx, "postgres", "SELECT 1"); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", EnvURL, err)
		}
		return s, nil
	}
	if _, err := pgcluster.FindBinDir(); err != nil {
		return nil, fmt.Errorf("%w and %s is not set", err, EnvURL)
	}
	if err := s.startCluster(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// startCluster starts a cluster of the harness's own for s.
func (s *server) startCluster(ctx context.Context) error {
	c, err := pgcluster.Start(ctx, pgcluster.Config{TLS: true, CertGroup: certGroup, WatchPID: os.Getpid(),
		Durable: os.Getenv(EnvDurable) == "1"})
	if err != nil {
		return err
	}
	s.cluster = c
	s.adminURL, err = url.Parse(c.AdminURL("postgres"))
	return err
}

// stop stops the cluster the harness started, and only that one. It does
// nothing to an external server.
func (s *server) stop() error {
	var errs []error
	if s.cluster != nil {
		errs = append(errs, s.cluster.Stop())
	}
	if s.clientDir != "" {
		errs = append(errs, os.RemoveAll(s.clientDir))
	}
	return errors.Join(errs...)
}

// admin runs one statement as the administrator on database db.
func (s *server) admin(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, s.databaseURL(db))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

// databaseURL is the admin URL with another database.
func (s *server) databaseURL(name string) string {
	u := *s.adminURL
	u.Path = "/" + name
	return u.String()
}

// roleURL is the admin URL with another user, no password, another database
// and no parameters.
func (s *server) roleURL(role, db string) *url.URL {
	u := *s.adminURL
	u.User = url.User(role)
	u.Path = "/" + db
	u.RawQuery = ""
	return &u
}

// addPassword adds the role's line to the password file.
func (s *server) addPassword(role, password string) error {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	host, port, err := net.SplitHostPort(s.adminURL.Host)
	if err != nil {
		host, port = s.adminURL.Hostname(), "5432"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("the server's port %q", port)
	}
	s.passwords = append(s.passwords, strings.Join([]string{host, port, "*", role, password}, ":"))
	return pki.WriteFileAtomic(s.passfile, []byte(strings.Join(s.passwords, "\n")+"\n"), 0o600)
}
