package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/spiretest"
)

// svidTTL is the X.509-SVID lifetime of the SPIRE server in TestSPIRE: the agent rotates
// an SVID at about half of it.
const svidTTL = 40 * time.Second

// spireRun is TestSPIRE's world: SPIRE, the binaries and their copies, the services.
type spireRun struct {
	spire    *spiretest.SPIRE
	root     string
	dir      string // binaries, copies, databases, stats
	accounts string // gRPC addresses
	payments string
	metrics  map[string]string // service -> metrics base URL
}

// TestSPIRE runs the bank on a real SPIRE server and agent: both services and every
// client take their identities from the Workload API, with registration entries selecting
// binaries by path (a copy of bankctl, or of the load client, per identity). It checks
// the demo's paths, customers included; that under continuous load from 20 workers not one
// call fails while every SVID rotates at least twice, and that the serials seen change;
// that a client whose entry is deleted is refused once its SVID expires; that a service
// without an entry, or without an agent, gives up at its start timeout and exits non-zero.
func TestSPIRE(t *testing.T) {
	spiretest.Binaries(t) // skip early, before building anything
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	r := &spireRun{root: repoRoot(t), metrics: map[string]string{}}
	dir, err := filepath.EvalSymlinks(t.TempDir()) // unix:path selectors name the real path
	if err != nil {
		t.Fatal(err)
	}
	r.dir = dir
	bin, err := filepath.EvalSymlinks(binaries(ctx, t, r.root))
	if err != nil {
		t.Fatal(err)
	}
	r.spire = spiretest.Start(t, svidTTL)
	t.Logf("SPIRE running after %s", time.Since(start).Round(time.Second))

	// Registration entries: the services by their binaries (with the DNS name clients
	// dial them by), each person by a copy of bankctl or of the load client.
	r.spire.CreateEntry(t, spiretest.Entry{ID: "accounts", SPIFFEID: "spiffe://bank.local/service/accounts",
		Selectors: []string{"unix:path:" + filepath.Join(bin, "accounts")}, DNSNames: []string{"localhost"}})
	r.spire.CreateEntry(t, spiretest.Entry{ID: "payments", SPIFFEID: "spiffe://bank.local/service/payments",
		Selectors: []string{"unix:path:" + filepath.Join(bin, "payments")}, DNSNames: []string{"localhost"}})
	people := map[string]string{
		"teller": "spiffe://bank.local/teller/tina", "alice": "spiffe://bank.local/customer/alice",
		"bob": "spiffe://bank.local/customer/bob", "auditor": "spiffe://bank.local/auditor/audrey",
		"carol": "spiffe://bank.local/customer/carol",
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range people {
		copyFile(t, filepath.Join(bin, "bankctl"), r.path(name, "bankctl"))
		copyFile(t, self, r.path(name, "load"))
		r.spire.CreateEntry(t, spiretest.Entry{ID: name + "-bankctl", SPIFFEID: id, Selectors: []string{"unix:path:" + r.path(name, "bankctl")}})
		r.spire.CreateEntry(t, spiretest.Entry{ID: name + "-load", SPIFFEID: id, Selectors: []string{"unix:path:" + r.path(name, "load")}})
	}

	// A service binary no entry selects: it waits its start timeout, then says why.
	copyFile(t, filepath.Join(bin, "accounts"), r.path("unregistered", "accounts"))
	var noEntry sync.WaitGroup
	defer noEntry.Wait()
	noEntry.Go(func() {
		out, err, took := r.runService(ctx, t, r.path("unregistered", "accounts"), "unregistered", r.spire.AgentAddr(), 10*time.Second)
		t.Logf("unregistered service gave up after %s", took.Round(100*time.Millisecond))
		if err == nil || !strings.Contains(out, "no registration entry matches this process") || !strings.Contains(out, "waiting for an X.509-SVID") {
			t.Errorf("a service without a registration entry: %v, want a non-zero exit naming the entry:\n%s", err, out)
		}
		if took > time.Minute {
			t.Errorf("a service without a registration entry took %s to give up, want its 10s start timeout", took)
		}
	})

	r.startServices(t, bin)
	t.Logf("services ready after %s", time.Since(start).Round(time.Second))
	aliceAcc, bobAcc := r.demoPaths(ctx, t)
	t.Logf("demo paths done after %s", time.Since(start).Round(time.Second))
	r.load(ctx, t, aliceAcc, bobAcc)
	t.Logf("load done after %s", time.Since(start).Round(time.Second))
	noEntry.Wait()

	// The agent down at start: the service waits, says so, and exits non-zero.
	r.spire.StopAgent(t)
	out, err, took := r.runService(ctx, t, filepath.Join(bin, "accounts"), "agentdown", r.spire.AgentAddr(), 5*time.Second)
	if err == nil || !strings.Contains(out, "waiting for an X.509-SVID") || !strings.Contains(out, "is the SPIRE agent running") {
		t.Errorf("a service started with the agent down: %v, want a non-zero exit saying the agent is unreachable:\n%s", err, out)
	}
	if took > time.Minute {
		t.Errorf("a service started with the agent down took %s to give up, want its 5s start timeout", took)
	}
	t.Logf("TestSPIRE took %s", time.Since(start).Round(time.Second))
}

// auditKey returns the audit signing key of service name (SVIDs come from SPIRE; the
// audit key is the service's own file either way), making it on first use.
func (r *spireRun) auditKey(t *testing.T, name string) string {
	t.Helper()
	key := filepath.Join(r.dir, name+"-audit.key")
	if _, err := os.Stat(key); err == nil {
		return key
	}
	if err := auditlog.WriteKeyPair(key, filepath.Join(r.dir, name+"-audit.pub")); err != nil {
		t.Fatal(err)
	}
	return key
}

// path is where the copy of a binary for an identity lives.
func (r *spireRun) path(name, binary string) string {
	return filepath.Join(r.dir, "id", name, binary)
}

// startServices starts accounts and payments on the Workload API and waits until both
// are ready.
func (r *spireRun) startServices(t *testing.T, bin string) {
	t.Helper()
	ports := freePorts(t, 4)
	r.accounts, r.payments = "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1]
	r.metrics["accounts"], r.metrics["payments"] = "http://127.0.0.1:"+ports[2], "http://127.0.0.1:"+ports[3]
	common := []string{
		"--spiffe-endpoint", r.spire.AgentAddr(), "--spiffe-start-timeout", "60s",
		// 20 workers of two identities: the per-identity limit is not what this test is about.
		"--rate-limit", "500", "--rate-burst", "1000",
	}
	accounts := startProcess(t, filepath.Join(bin, "accounts"), append([]string{
		"--listen", r.accounts, "--metrics-listen", "127.0.0.1:" + ports[2], "--db", filepath.Join(r.dir, "accounts.db"),
		"--audit-key", r.auditKey(t, "accounts"),
	}, common...)...)
	payments := startProcess(t, filepath.Join(bin, "payments"), append([]string{
		"--listen", r.payments, "--metrics-listen", "127.0.0.1:" + ports[3], "--db", filepath.Join(r.dir, "payments.db"),
		"--accounts-addr", r.accounts, "--audit-key", r.auditKey(t, "payments"),
	}, common...)...)
	// payments is ready once it has its SVID and accounts answers it: both have theirs.
	waitReady(t, r.metrics["payments"]+"/readyz", accounts, payments)
}

// serviceEnv is the environment of the processes the test runs itself: without BANK_*
// and SPIFFE_ENDPOINT_SOCKET variables of the developer's shell, which would change them.
func serviceEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BANK_") || strings.HasPrefix(kv, "SPIFFE_ENDPOINT_SOCKET=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runService runs a service that must give up at its start: it returns its output, its
// exit error and how long it ran.
func (r *spireRun) runService(ctx context.Context, t *testing.T, binary, name, endpoint string, timeout time.Duration) (string, error, time.Duration) {
	t.Helper()
	ports := freePorts(t, 2)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, binary, "--spiffe-endpoint", endpoint, "--spiffe-start-timeout", timeout.String(),
		"--listen", "127.0.0.1:"+ports[0], "--metrics-listen", "127.0.0.1:"+ports[1], "--db", filepath.Join(r.dir, name+".db"),
		"--audit-key", r.auditKey(t, name))
	cmd.Dir, cmd.Env = r.dir, serviceEnv()
	begin := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), err, time.Since(begin)
}

// bankctl runs the copy of bankctl of identity name with the Workload API and returns its
// stdout, stderr and exit code.
func (r *spireRun) bankctl(ctx context.Context, t *testing.T, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, r.path(name, "bankctl"), append([]string{
		"--spiffe-endpoint", r.spire.AgentAddr(), "--accounts-addr", r.accounts, "--payments-addr", r.payments, "--timeout", "30s",
		"--server-name", "localhost", // the DNS SAN of the services' entries
	}, args...)...)
	cmd.Env = serviceEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bankctl as %s: %v", name, err)
	}
	return stdout.String(), stderr.String(), code
}

// demoPaths runs the demo's paths with each person's bankctl and returns alice's and
// bob's accounts.
func (r *spireRun) demoPaths(ctx context.Context, t *testing.T) (aliceAcc, bobAcc string) {
	t.Helper()
	ok := func(name string, args ...string) string {
		t.Helper()
		out, errOut, code := r.bankctl(ctx, t, name, args...)
		if code != 0 {
			t.Fatalf("bankctl as %s %s: exit %d\n%s%s", name, strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	refused := func(want int, name string, args ...string) {
		t.Helper()
		out, errOut, code := r.bankctl(ctx, t, name, args...)
		if code != want {
			t.Errorf("bankctl as %s %s: exit %d, want %d\n%s%s", name, strings.Join(args, " "), code, want, out, errOut)
		}
	}
	open := func(owner string) string {
		t.Helper()
		var resp struct {
			Account struct {
				ID string `json:"id"`
			} `json:"account"`
		}
		out := ok("teller", "-o", "json", "accounts", "open", "--owner", owner, "--currency", "EUR")
		if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Account.ID == "" {
			t.Fatalf("accounts open: %v\n%s", err, out)
		}
		return resp.Account.ID
	}
	for name, id := range map[string]string{"teller": "spiffe://bank.local/teller/tina", "alice": "spiffe://bank.local/customer/alice", "auditor": "spiffe://bank.local/auditor/audrey"} {
		if out := ok(name, "whoami"); !strings.Contains(out, id) || !strings.Contains(out, "SERIAL") {
			t.Errorf("whoami as %s does not show %s and its serial:\n%s", name, id, out)
		}
	}
	aliceAcc, bobAcc = open("spiffe://bank.local/customer/alice"), open("spiffe://bank.local/customer/bob")
	ok("teller", "accounts", "deposit", "--account-id", aliceAcc, "--amount", "1000.00")
	ok("alice", "accounts", "get", "--id", aliceAcc)
	ok("alice", "accounts", "list")
	if out := ok("alice", "-o", "json", "payments", "create", "--from-account-id", aliceAcc, "--to-account-id", bobAcc, "--amount", "5.00"); !strings.Contains(out, "PAYMENT_STATUS_COMPLETED") {
		t.Errorf("alice's payment did not complete:\n%s", out)
	}
	var bob struct {
		Account struct {
			Balance struct {
				MinorUnits string `json:"minor_units"`
			} `json:"balance"`
		} `json:"account"`
	}
	if out := ok("bob", "-o", "json", "accounts", "get", "--id", bobAcc); json.Unmarshal([]byte(out), &bob) != nil || bob.Account.Balance.MinorUnits != "500" {
		t.Errorf("bob's account does not hold the 5.00 alice paid:\n%s", out)
	}
	ok("auditor", "accounts", "list")
	ok("auditor", "payments", "list")
	refused(4, "alice", "accounts", "get", "--id", bobAcc)                                                                // not her account
	refused(4, "bob", "payments", "create", "--from-account-id", aliceAcc, "--to-account-id", bobAcc, "--amount", "1.00") // not his account
	refused(4, "alice", "accounts", "deposit", "--account-id", aliceAcc, "--amount", "1.00")                              // customers do not deposit
	refused(4, "alice", "--on-behalf-of", "spiffe://bank.local/customer/bob", "accounts", "get", "--id", bobAcc)          // no delegation for customers
	refused(4, "auditor", "accounts", "deposit", "--account-id", aliceAcc, "--amount", "1.00")                            // auditors only read
	refused(3, "alice", "--server-spiffe-id", "spiffe://bank.local/service/payments", "whoami")                           // server identity pinned
	return aliceAcc, bobAcc
}

// load runs 20 workers (alice paying bob, bob reading) and carol's single worker across
// at least two rotations of every SVID. Midway carol's entry is deleted: she must be
// refused once her SVID expires. Not one call of alice or bob may fail.
func (r *spireRun) load(ctx context.Context, t *testing.T, aliceAcc, bobAcc string) {
	t.Helper()
	stats := filepath.Join(r.dir, "stats")
	if err := os.MkdirAll(stats, 0o700); err != nil {
		t.Fatal(err)
	}
	stopFile := filepath.Join(stats, "stop")
	type client struct{ name, workers, from, to string }
	clients := []client{{"alice", "10", aliceAcc, bobAcc}, {"bob", "10", "", ""}, {"carol", "1", "", ""}}
	var procs sync.WaitGroup
	for _, c := range clients {
		cmd := exec.CommandContext(ctx, r.path(c.name, "load"))
		cmd.Env = append(serviceEnv(), loadClientEnv+"="+c.name, loadEndpoint+"="+r.spire.AgentAddr(),
			loadAccounts+"="+r.accounts, loadPayments+"="+r.payments, loadWorkers+"="+c.workers,
			loadFrom+"="+c.from, loadTo+"="+c.to,
			loadStatsFile+"="+filepath.Join(stats, c.name+".json"), loadStopFile+"="+stopFile)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs.Go(func() {
			if err := cmd.Wait(); err != nil {
				t.Errorf("load client %s: %v\n%s", c.name, err, out.tail(20))
			}
		})
	}
	defer func() {
		os.WriteFile(stopFile, nil, 0o600)
		procs.Wait()
	}()

	// Carol's entry goes once she has been served.
	waitUntil(t, 90*time.Second, "carol served", func() bool {
		s, ok := readStats(stats, "carol")
		return ok && s.Calls > s.Failures && !s.LastSuccess.IsZero()
	})
	r.spire.DeleteEntry(t, "carol-load")
	deleted := time.Now()
	t.Logf("carol's entry deleted at %s", deleted.Format(time.RFC3339))

	// Every SVID rotates twice: the services' (their metrics), alice's and bob's (the
	// serials the services saw), and the clients see the services' serials change.
	rotated := func() (string, bool) {
		for _, service := range []string{"accounts", "payments"} {
			if n := r.metric(t, service, "bank_svid_rotations_total"); n < 2 {
				return fmt.Sprintf("%s rotated %v times", service, n), false
			}
		}
		for _, name := range []string{"alice", "bob"} {
			s, _ := readStats(stats, name)
			if len(s.OwnSerials) < 3 {
				return fmt.Sprintf("%s had %d serials", name, len(s.OwnSerials)), false
			}
			for _, service := range []string{"accounts", "payments"} {
				if len(s.ServerSerials[service]) < 3 {
					return fmt.Sprintf("%s saw %d serials of %s", name, len(s.ServerSerials[service]), service), false
				}
			}
		}
		return "", true
	}
	carolStopped := func() bool {
		s, _ := readStats(stats, "carol")
		return s.LastFailure.After(s.LastSuccess)
	}
	deadline := time.Now().Add(4 * svidTTL)
	for {
		why, done := rotated()
		if done && carolStopped() {
			break
		}
		for _, name := range []string{"alice", "bob"} {
			if s, _ := readStats(stats, name); s.Failures > 0 {
				t.Fatalf("%s: %d of %d calls failed during rotation: %v", name, s.Failures, s.Calls, s.Errors)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s; carol stopped: %v", 4*svidTTL, why, carolStopped())
		}
		time.Sleep(time.Second) // polling the stats files and metrics
	}

	if err := os.WriteFile(stopFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	procs.Wait()
	for _, name := range []string{"alice", "bob"} {
		s, ok := readStats(stats, name)
		if !ok || !s.Done {
			t.Fatalf("%s's load client left no final stats", name)
		}
		t.Logf("%s: %d calls, %d failed, own serials %v, accounts serials %v, payments serials %v",
			name, s.Calls, s.Failures, s.OwnSerials, s.ServerSerials["accounts"], s.ServerSerials["payments"])
		if s.Failures != 0 {
			t.Errorf("%s: %d of %d calls failed: %v", name, s.Failures, s.Calls, s.Errors)
		}
	}
	carol, _ := readStats(stats, "carol")
	t.Logf("carol: entry deleted at %s; last served %s later (her SVID's NotAfter %s), refused from %s on",
		deleted.Format(time.RFC3339), carol.LastSuccess.Sub(deleted).Round(time.Second),
		carol.OwnNotAfter.Format(time.RFC3339), carol.FirstFailure.Format(time.RFC3339))
	// One SVID lifetime after the deletion reaches the agent (its sync, every 5 seconds):
	// a rotation just before that sync is the last SVID she gets.
	if limit := deleted.Add(svidTTL + 10*time.Second); carol.LastSuccess.After(limit) || carol.OwnNotAfter.After(limit) {
		t.Errorf("carol was served until %s (SVID not after %s), more than one SVID lifetime after her entry was deleted at %s",
			carol.LastSuccess.Format(time.RFC3339), carol.OwnNotAfter.Format(time.RFC3339), deleted.Format(time.RFC3339))
	}
	if carol.LastSuccess.After(carol.OwnNotAfter) {
		t.Errorf("carol was served at %s, after her SVID's NotAfter %s", carol.LastSuccess, carol.OwnNotAfter)
	}
}

// metric returns a counter or gauge without labels from a service's /metrics.
func (r *spireRun) metric(t *testing.T, service, name string) float64 {
	t.Helper()
	code, body := httpGet(r.metrics[service] + "/metrics")
	if code != http.StatusOK {
		return -1
	}
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitUntil polls cond until it holds, failing the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// copyFile copies an executable (a copy, not a link: the agent sees the path a process
// was started from).
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o700); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is an output sink shared by a process's stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns the last n lines written.
func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(b.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
