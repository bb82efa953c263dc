package pgcluster

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
	"time"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/pki"
)

// EnvBinDir overrides where initdb, pg_ctl and postgres are looked for.
const EnvBinDir = "BANK_PG_BINDIR"

// DefaultBinDir is where Debian's postgresql-15 package installs the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// ServerUser runs the cluster when the caller is root: PostgreSQL refuses to
// run as root.
const ServerUser = "postgres"

// Host is the address the cluster listens on, and the name its TLS certificate
// carries besides "localhost".
const Host = "127.0.0.1"

// ErrNoBinaries means that initdb, pg_ctl and postgres were not found.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries")

// Config says what cluster to start.
type Config struct {
	// Dir is the directory of the cluster (data directory, socket, logs, TLS
	// files); it must not exist yet or be empty. Empty: a new temporary
	// directory, removed by Stop.
	Dir string
	// Durable keeps fsync on. Off, a killed server still loses nothing the
	// operating system has, which is enough for tests on a shared disk.
	Durable bool
	// TLS turns ssl on with a server certificate (localhost, 127.0.0.1) from a
	// CA the cluster makes (CA, IssueClient). Plain TCP connections are still
	// accepted.
	TLS bool
	// CertGroup, with TLS, names a group role (created at start) whose members
	// must authenticate with a client certificate whose CN is their role name,
	// over TLS (pg_hba "cert"); everyone else authenticates with a password.
	CertGroup string
	// WatchPID, if not 0, is a process the cluster does not outlive: a watchdog
	// stops the cluster once that process is gone (a test binary killed by a
	// timeout, a run script killed with SIGKILL).
	WatchPID int
}

// Cluster is a running cluster.
type Cluster struct {
	// Dir is the cluster's directory; Data its data directory.
	Dir, Data string
	// Port is the TCP port on Host.
	Port int

	bin      string
	password string // of the postgres superuser
	asUser   bool   // run the tools as ServerUser through runuser
	uid, gid int
	ownDir   bool // Dir was created by Start and is removed by Stop
	ca       *pki.CA
	// watchdog stops the cluster if the watched process dies; Stop ends it
	// first, so that it does not remove the directory while pg_ctl stop still
	// reads it.
	watchdog     *exec.Cmd
	watchdogDone chan struct{}
	// serverOpts and logFile are what pg_ctl start was given, for Restart.
	serverOpts []string
	logFile    string
}

// FindBinDir finds the directory with initdb, pg_ctl and postgres: $BANK_PG_BINDIR,
// else DefaultBinDir or the newest /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
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
	return "", fmt.Errorf("%w: no initdb, pg_ctl and postgres in %s", ErrNoBinaries, strings.Join(candidates, ", "))
}

// Start runs initdb and pg_ctl start. It retries on another port if the free
// port it picked was taken meanwhile.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		c, err := start(ctx, bin, cfg)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if cfg.Dir != "" {
			break // a directory of the caller's is not retried in
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, bin string, cfg Config) (_ *Cluster, err error) {
	c := &Cluster{bin: bin, Dir: cfg.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "pgcluster-"); err != nil {
			return nil, fmt.Errorf("cluster directory: %w", err)
		}
		c.ownDir = true
	} else if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster directory: %w", err)
	}
	c.Data = filepath.Join(c.Dir, "data")
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	if os.Geteuid() == 0 {
		u, err := user.Lookup(ServerUser)
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no %q user to run PostgreSQL as: %w", ServerUser, err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		c.asUser = true
	}
	if err := c.give(c.Dir); err != nil {
		return nil, err
	}
	// A random superuser password, so that other local users cannot use the
	// cluster while it runs (it listens on 127.0.0.1).
	c.password = randomHex(16)
	pwfile := filepath.Join(c.Dir, "pwfile")
	if err := c.writeServerFile(pwfile, []byte(c.password+"\n")); err != nil {
		return nil, err
	}
	if out, err := c.run(ctx, "initdb", "-D", c.Data, "-U", "postgres", "--pwfile", pwfile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		hint := ""
		if c.asUser {
			hint = fmt.Sprintf(" (the %s user must be able to reach %s)", ServerUser, c.Dir)
		}
		return nil, fmt.Errorf("initdb%s: %w: %s", hint, err, lastLines(out))
	}
	_ = os.Remove(pwfile)

	opts := []string{
		"-c listen_addresses=" + Host,
		"-c unix_socket_directories=" + c.Dir,
		"-c max_connections=200",
		"-c shared_buffers=32MB",
	}
	if !cfg.Durable {
		opts = append(opts, "-c fsync=off", "-c full_page_writes=off")
	}
	if cfg.TLS {
		tlsOpts, err := c.setUpTLS(cfg.CertGroup)
		if err != nil {
			return nil, err
		}
		opts = append(opts, tlsOpts...)
	}
	if c.Port, err = freePort(); err != nil {
		return nil, err
	}
	opts = append(opts, "-c port="+strconv.Itoa(c.Port))
	c.serverOpts, c.logFile = opts, filepath.Join(c.Dir, "server.log")
	if err := c.pgCtlStart(ctx); err != nil {
		return nil, err
	}
	if cfg.WatchPID != 0 {
		if err := c.startWatchdog(cfg.WatchPID); err != nil {
			return nil, err
		}
	}
	if err := c.Exec(ctx, "postgres", "SELECT 1"); err != nil {
		return nil, fmt.Errorf("connect to the new cluster: %w", err)
	}
	if cfg.TLS && cfg.CertGroup != "" {
		if err := c.Exec(ctx, "postgres", "CREATE ROLE "+pgx.Identifier{cfg.CertGroup}.Sanitize()+" NOLOGIN"); err != nil {
			return nil, fmt.Errorf("create the client certificate group: %w", err)
		}
	}
	return c, nil
}

// setUpTLS makes the CA and the server certificate, writes the files and
// pg_hba.conf, and returns the server options that turn TLS on.
func (c *Cluster) setUpTLS(certGroup string) ([]string, error) {
	ca, err := pki.NewRootCA("pgcluster test CA")
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	c.ca = ca
	leaf, err := ca.Issue(pki.Request{CommonName: "localhost", DNSNames: []string{"localhost"},
		IPs: []net.IP{net.ParseIP(Host)}, Usage: pki.ServerAuth})
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	key, err := pki.EncodeKeyPEM(leaf.Key)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"server.crt": pki.EncodeCertsPEM(leaf.Chain...),
		"server.key": key, // the server refuses a key others can read
		"ca.crt":     pki.EncodeCertsPEM(ca.Cert),
	}
	for name, data := range files {
		if err := c.writeServerFile(filepath.Join(c.Dir, name), data); err != nil {
			return nil, err
		}
	}
	// First match wins: members of certGroup only with a certificate over
	// TLS, everyone else with a password.
	hba := "local all all scram-sha-256\n"
	if certGroup != "" {
		hba += "hostssl all +" + certGroup + " " + Host + "/32 cert\n"
	}
	hba += "host all all " + Host + "/32 scram-sha-256\n"
	if err := c.writeServerFile(filepath.Join(c.Data, "pg_hba.conf"), []byte(hba)); err != nil {
		return nil, err
	}
	return []string{
		"-c ssl=on",
		"-c ssl_cert_file=" + filepath.Join(c.Dir, "server.crt"),
		"-c ssl_key_file=" + filepath.Join(c.Dir, "server.key"),
		"-c ssl_ca_file=" + filepath.Join(c.Dir, "ca.crt"),
		"-c ssl_min_protocol_version=TLSv1.3",
	}, nil
}

// CAFile is the PEM file of the CA that issued the server's certificate (and
// the client certificates it accepts), or "" without TLS.
func (c *Cluster) CAFile() string {
	if c.ca == nil {
		return ""
	}
	return filepath.Join(c.Dir, "ca.crt")
}

// IssueClient issues a client certificate for role (its CN), which the
// cluster accepts for a member of Config.CertGroup. It fails without TLS.
func (c *Cluster) IssueClient(role string) (*pki.Leaf, error) {
	if c.ca == nil {
		return nil, errors.New("pgcluster: the cluster has no TLS")
	}
	return c.ca.Issue(pki.Request{CommonName: role, Usage: pki.ClientAuth})
}

// AdminURL is the URL of the superuser (with its password) on database db.
func (c *Cluster) AdminURL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", c.password),
		Host:     net.JoinHostPort(Host, strconv.Itoa(c.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Exec runs one statement as the superuser on database db.
func (c *Cluster) Exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.AdminURL(db))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// Stop stops the server (fast shutdown) and, if Start created the directory,
// removes it. It does nothing to a cluster that is not running.
func (c *Cluster) Stop() error {
	var errs []error
	if c.watchdog != nil {
		_ = c.watchdog.Process.Kill()
		<-c.watchdogDone
		c.watchdog = nil
	}
	if _, err := os.Stat(filepath.Join(c.Data, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.Data); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w: %s", err, lastLines(out)))
		}
	}
	if c.ownDir {
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove cluster directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// StopDir stops the cluster whose directory is dir (Config.Dir of an earlier
// Start, maybe by another process), fast, and leaves the directory.
func StopDir(dir string) error {
	bin, err := FindBinDir()
	if err != nil {
		return err
	}
	c := &Cluster{bin: bin, Dir: dir, Data: filepath.Join(dir, "data")}
	if os.Geteuid() == 0 {
		c.asUser = true
	}
	return c.Stop()
}

// startWatchdog starts a shell that stops the cluster once process pid is
// gone: it stops only this cluster (by its data directory), and ends by itself
// when the cluster is stopped otherwise (postmaster.pid goes away). It runs as
// the caller, who may signal pid; the stop runs as the server's user. A
// directory Start created is removed after the stop.
func (c *Cluster) startWatchdog(pid int) error {
	stop := []string{filepath.Join(c.bin, "pg_ctl"), "stop", "-m", "immediate", "-D", c.Data}
	if c.asUser {
		stop = append([]string{"runuser", "-u", ServerUser, "--"}, stop...)
	}
	remove := ""
	if c.ownDir {
		remove = c.Dir
	}
	// Arguments: the pid, the data directory, the directory to remove (or ""),
	// then the stop command.
	script := `p="$1"; d="$2"; r="$3"; shift 3; ` +
		`while kill -0 "$p" 2>/dev/null && [ -f "$d/postmaster.pid" ]; do sleep 1; done; ` +
		`if [ -f "$d/postmaster.pid" ]; then "$@" >/dev/null 2>&1; fi; if [ -n "$r" ]; then rm -rf "$r"; fi`
	cmd := exec.Command("sh", append([]string{"-c", script, "pgcluster-watchdog", strconv.Itoa(pid), c.Data, remove}, stop...)...)
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the cluster's watchdog: %w", err)
	}
	c.watchdog, c.watchdogDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.watchdogDone) }()
	return nil
}

// give makes path the server user's when running as root.
func (c *Cluster) give(path string) error {
	if !c.asUser {
		return nil
	}
	if err := os.Chown(path, c.uid, c.gid); err != nil {
		return fmt.Errorf("give %s to %s: %w", path, ServerUser, err)
	}
	return nil
}

// writeServerFile writes a file the server reads, mode 0600, owned by the
// server's user.
func (c *Cluster) writeServerFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return c.give(path)
}

// run runs a server tool, as the server user if the caller is root.
func (c *Cluster) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asUser {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", ServerUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.Dir // the server user may not be able to read the caller's directory
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", Host+":0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RandomHex returns 2n random hexadecimal digits: names and passwords.
func RandomHex(n int) string { return randomHex(n) }

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

// URL is the URL of role on database db, without a password (it comes from a
// password file), over TLS with sslmode=verify-full against the cluster's CA when
// the cluster has TLS.
func (c *Cluster) URL(db, role string) string {
	u := url.URL{Scheme: "postgres", User: url.User(role), Host: net.JoinHostPort(Host, strconv.Itoa(c.Port)), Path: "/" + db}
	q := url.Values{}
	if c.ca != nil {
		q.Set("sslmode", "verify-full")
		q.Set("sslrootcert", c.CAFile())
	} else {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}
