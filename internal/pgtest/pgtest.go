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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	EnvBinDir = "BANK_PG_BINDIR"
	// EnvDurable set to 1 starts the cluster with fsync and full_page_writes on,
	// as production runs, for benchmarks of durable commits (tests run without).
	EnvDurable = "BANK_TEST_PG_DURABLE"
)

// DefaultBinDir is where Debian's postgresql-15 package installs the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// serverUser runs the cluster when the tests run as root: PostgreSQL refuses
// to run as root.
const serverUser = "postgres"

// harness is the one server of the test binary. Package-level because a test
// binary has one TestMain and many tests that share the cluster; it is only
// written under once.
var harness struct {
	once    sync.Once
	srv     *server // nil if unavailable
	why     string  // why srv is nil
	skipped bool    // a test skipped because of why
	mu      sync.Mutex
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
	name := "test_" + randomHex(8)
	if err := srv.admin(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends the sessions a failed test may have left open.
		if err := srv.admin(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return srv.databaseURL(name)
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

// server is either a cluster the harness started (dir != "") or an external one.
type server struct {
	adminURL *url.URL
	// The cluster's own: its directory, data directory and how to run its tools.
	dir, data string
	bin       string
	// asUser: run the tools as serverUser (uid, gid) through runuser.
	asUser   bool
	uid, gid int
	// watchdog stops the cluster if the test binary dies; stop ends it first, so
	// that it does not remove the directory while pg_ctl stop still reads it.
	watchdog     *exec.Cmd
	watchdogDone chan struct{}
}

// errNoServer means that neither an external server nor the binaries exist.
var errNoServer = errors.New("no server")

func startServer(ctx context.Context) (*server, error) {
	if raw := os.Getenv(EnvURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// The URL may hold a password: never print it.
			return nil, fmt.Errorf("%s is not a postgres:// URL", EnvURL)
		}
		s := &server{adminURL: u}
		if err := s.admin(ctx, "SELECT 1"); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", EnvURL, err)
		}
		return s, nil
	}
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and listen
		s, err := startCluster(ctx, bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// binDir finds the directory with initdb, pg_ctl and postgres.
func binDir() (string, error) {
	candidates := []string{DefaultBinDir}
	if d := os.Getenv(EnvBinDir); d != "" {
		candidates = []string{d}
	} else if others, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(others) > 0 {
		sort.Sort(sort.Reverse(sort.StringSlice(others)))
		candidates = append(candidates, others...)
	}
	for _, d := range candidates {
		ok := true
		for _, tool := range []string{"initdb", "pg_ctl", "postgres"} {
			if fi, err := os.Stat(filepath.Join(d, tool)); err != nil || fi.Mode()&0o111 == 0 {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: no initdb, pg_ctl and postgres in %s and %s is not set", errNoServer, strings.Join(candidates, ", "), EnvURL)
}

// startCluster runs initdb and pg_ctl start in a new temporary directory.
func startCluster(ctx context.Context, bin string) (_ *server, err error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("cluster directory: %w", err)
	}
	s := &server{dir: dir, data: filepath.Join(dir, "data"), bin: bin}
	defer func() {
		if err != nil {
			_ = s.stop()
		}
	}()
	if os.Geteuid() == 0 {
		u, err := user.Lookup(serverUser)
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no %q user to run PostgreSQL as: %w", serverUser, err)
		}
		s.uid, _ = strconv.Atoi(u.Uid)
		s.gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(dir, s.uid, s.gid); err != nil {
			return nil, fmt.Errorf("give %s to %s: %w", dir, serverUser, err)
		}
		s.asUser = true
	}
	// A random superuser password, so that other local users cannot use the
	// cluster while it runs (it listens on 127.0.0.1).
	password := randomHex(16)
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write password file: %w", err)
	}
	if s.asUser {
		if err := os.Chown(pwfile, s.uid, s.gid); err != nil {
			return nil, fmt.Errorf("give password file to %s: %w", serverUser, err)
		}
	}
	if out, err := s.run(ctx, "initdb", "-D", s.data, "-U", "postgres", "--pwfile", pwfile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, lastLines(out))
	}
	_ = os.Remove(pwfile)

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// fsync off: a test cluster need not survive a power loss, and the
	// machine's disk is shared; a killed server still loses nothing the
	// operating system has (the page cache outlives the process). Benchmarks
	// of durable writes turn it on (EnvDurable).
	durability := "off"
	if os.Getenv(EnvDurable) == "1" {
		durability = "on"
	}
	opts := strings.Join([]string{
		"-c listen_addresses=127.0.0.1",
		"-c port=" + strconv.Itoa(port),
		"-c unix_socket_directories=" + dir,
		"-c fsync=" + durability,
		"-c full_page_writes=" + durability,
		"-c max_connections=200",
		"-c shared_buffers=32MB",
	}, " ")
	logFile := filepath.Join(dir, "server.log")
	if out, err := s.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", s.data, "-l", logFile, "-o", opts); err != nil {
		log, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("pg_ctl start: %w: %s %s", err, lastLines(out), lastLines(log))
	}
	if err := s.startWatchdog(); err != nil {
		return nil, err
	}
	s.adminURL = &url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	if err := s.admin(ctx, "SELECT 1"); err != nil {
		return nil, fmt.Errorf("connect to the new cluster: %w", err)
	}
	return s, nil
}

// stop stops the cluster the harness started, and only that one, and removes
// its directory. It does nothing for an external server.
func (s *server) stop() error {
	if s.dir == "" {
		return nil
	}
	var errs []error
	if s.watchdog != nil {
		_ = s.watchdog.Process.Kill()
		<-s.watchdogDone
	}
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := s.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", s.data); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w: %s", err, lastLines(out)))
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove cluster directory: %w", err))
	}
	return errors.Join(errs...)
}

// startWatchdog starts a shell that stops the cluster once the test binary is
// gone, as after a test timeout or a kill, when Main never runs its cleanup:
// it stops only the server the harness started (by its data directory), and
// ends by itself when the harness stops the server (postmaster.pid goes away).
// It runs as the test's user, who may signal the test binary; the stop runs
// as the server's user.
func (s *server) startWatchdog() error {
	stop := []string{filepath.Join(s.bin, "pg_ctl"), "stop", "-m", "immediate", "-D", s.data}
	if s.asUser {
		stop = append([]string{"runuser", "-u", serverUser, "--"}, stop...)
	}
	// Arguments: the test binary's pid, the data directory, the cluster
	// directory, then the stop command.
	script := `p="$1"; d="$2"; r="$3"; shift 3; ` +
		`while kill -0 "$p" 2>/dev/null && [ -f "$d/postmaster.pid" ]; do sleep 1; done; ` +
		`if [ -f "$d/postmaster.pid" ]; then "$@" >/dev/null 2>&1; fi; rm -rf "$r"`
	cmd := exec.Command("sh", append([]string{"-c", script, "pgtest-watchdog", strconv.Itoa(os.Getpid()), s.data, s.dir}, stop...)...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the cluster's watchdog: %w", err)
	}
	s.watchdog, s.watchdogDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.watchdogDone) }()
	return nil
}

// run runs a server tool, as the postgres user if the tests run as root.
func (s *server) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, tool)
	var cmd *exec.Cmd
	if s.asUser {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", serverUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = s.dir // the server user may not be able to read the test's directory
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

// admin runs one statement as the administrator on the postgres database.
func (s *server) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.adminURL.String())
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lastLines keeps the end of a tool's output for an error message.
func lastLines(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}
