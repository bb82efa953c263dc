package spiretest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables of the tests that use SPIRE.
const (
	// BinDirEnv names the directory of spire-server and spire-agent (default: bin/tools
	// of the repository).
	BinDirEnv = "BANK_SPIRE_BINDIR"
	// RequireEnv set to 1 makes missing SPIRE binaries a failure instead of a skip.
	RequireEnv = "BANK_REQUIRE_SPIRE"
)

// TrustDomain is the trust domain of the SPIRE server.
const TrustDomain = "bank.local"

// NodeID is the SPIFFE ID of the agent (its join token's), the parent of every entry.
const NodeID = "spiffe://bank.local/node/spiretest"

// startWait bounds the wait for the server and the agent to become healthy.
const startWait = 60 * time.Second

// Root returns the repository root: the nearest directory above the working directory
// whose go.mod is the mtlsbank module.
func Root(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module mtlsbank\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("spiretest: repository root (go.mod of module mtlsbank) not found above the working directory")
		}
		dir = parent
	}
}

// Binaries returns the directory holding spire-server and spire-agent. Without them the
// test is skipped with one line saying how to build them, or fails under
// BANK_REQUIRE_SPIRE=1.
func Binaries(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		dir = filepath.Join(Root(tb), "bin", "tools")
	}
	for _, b := range []string{"spire-server", "spire-agent"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			msg := fmt.Sprintf("SPIRE binaries not found (%s): run 'make spire' (or set %s)", filepath.Join(dir, b), BinDirEnv)
			if os.Getenv(RequireEnv) == "1" {
				tb.Fatalf("%s; %s=1 requires them", msg, RequireEnv)
			}
			tb.Skip(msg)
		}
	}
	return dir
}

// SPIRE is a running SPIRE server and agent.
type SPIRE struct {
	bin, dir     string
	serverSocket string
	agentSocket  string
	env          []string
	server       *process
	agent        *process
}

// Start runs a SPIRE server issuing X.509-SVIDs valid for svidTTL and an agent attested
// by a join token, both stopped at the end of the test.
func Start(tb testing.TB, svidTTL time.Duration) *SPIRE {
	tb.Helper()
	bin := Binaries(tb)
	root := Root(tb)
	// Unix socket paths are limited to about 100 bytes: a short directory.
	dir, err := os.MkdirTemp("", "spire")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	s := &SPIRE{
		bin:          bin,
		dir:          dir,
		serverSocket: filepath.Join(dir, "server.sock"),
		agentSocket:  filepath.Join(dir, "agent.sock"),
	}
	s.env = append(os.Environ(),
		"SPIRE_DATA_DIR="+dir,
		"SPIRE_SERVER_PORT="+freePort(tb),
		"SPIRE_SERVER_SOCKET="+s.serverSocket,
		"SPIRE_AGENT_SOCKET="+s.agentSocket,
		"SPIRE_SVID_TTL="+svidTTL.String(),
		"SPIRE_LOG_LEVEL=INFO",
	)
	s.server = s.start(tb, "spire-server", "run", "-config", filepath.Join(root, "scripts", "spire", "server.conf"), "-expandEnv")
	s.waitHealthy(tb, s.server, "spire-server", "healthcheck", "-socketPath", s.serverSocket)
	bundle := s.Server(tb, "bundle", "show")
	if err := os.WriteFile(filepath.Join(dir, "bootstrap-bundle.crt"), []byte(bundle), 0o600); err != nil {
		tb.Fatal(err)
	}
	token := s.JoinToken(tb)
	s.agent = s.start(tb, "spire-agent", "run", "-config", filepath.Join(root, "scripts", "spire", "agent.conf"), "-expandEnv", "-joinToken", token)
	s.waitHealthy(tb, s.agent, "spire-agent", "healthcheck", "-socketPath", s.agentSocket)
	return s
}

// AgentAddr returns the Workload API address of the agent, unix:///....
func (s *SPIRE) AgentAddr() string { return "unix://" + s.agentSocket }

// Dir returns the directory of the SPIRE data, sockets and logs.
func (s *SPIRE) Dir() string { return s.dir }

// JoinToken generates a join token for NodeID.
func (s *SPIRE) JoinToken(tb testing.TB) string {
	tb.Helper()
	out := s.Server(tb, "token", "generate", "-spiffeID", NodeID, "-ttl", "600")
	token, ok := strings.CutPrefix(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]), "Token: ")
	if !ok || token == "" {
		tb.Fatalf("spire-server token generate: unexpected output %q", out)
	}
	return token
}

// Entry is a registration entry.
type Entry struct {
	// ID is the entry ID, chosen by the test so that it can delete the entry by it.
	ID string
	// SPIFFEID is the identity the entry issues.
	SPIFFEID string
	// Selectors select the workloads that get it, such as "unix:path:/abs/bin/accounts".
	Selectors []string
	// DNSNames go into the SVID as DNS SANs (a server's name, for the client's check).
	DNSNames []string
}

// CreateEntry registers e under the agent.
func (s *SPIRE) CreateEntry(tb testing.TB, e Entry) {
	tb.Helper()
	args := []string{"entry", "create", "-entryID", e.ID, "-parentID", NodeID, "-spiffeID", e.SPIFFEID}
	for _, sel := range e.Selectors {
		args = append(args, "-selector", sel)
	}
	for _, d := range e.DNSNames {
		args = append(args, "-dns", d)
	}
	s.Server(tb, args...)
}

// DeleteEntry deletes the entry with id: the agent stops issuing its SVID at its next
// sync, and the workload keeps the SVID it has until it expires.
func (s *SPIRE) DeleteEntry(tb testing.TB, id string) {
	tb.Helper()
	s.Server(tb, "entry", "delete", "-entryID", id)
}

// StopAgent stops the agent (its Workload API socket goes away).
func (s *SPIRE) StopAgent(tb testing.TB) {
	tb.Helper()
	s.agent.stop(tb)
}

// Server runs a spire-server CLI command against the server's socket and returns its
// output; a failure fails the test.
func (s *SPIRE) Server(tb testing.TB, args ...string) string {
	tb.Helper()
	args = append(append([]string(nil), args...), "-socketPath", s.serverSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "spire-server"), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		tb.Fatalf("spire-server %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// process is a SPIRE process and its log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (s *SPIRE) start(tb testing.TB, name string, args ...string) *process {
	tb.Helper()
	log := filepath.Join(s.dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = s.env, s.dir, f, f
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.stop(tb)
		if tb.Failed() {
			tb.Logf("%s log (last lines):\n%s", name, tail(log, 30))
		}
	})
	return p
}

// stop ends the process (SIGTERM, then SIGKILL after ten seconds) and waits for it.
func (p *process) stop(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHealthy runs a healthcheck command until it succeeds, failing the test if p exits
// or startWait passes.
func (s *SPIRE) waitHealthy(tb testing.TB, p *process, bin string, args ...string) {
	tb.Helper()
	deadline := time.Now().Add(startWait)
	for {
		cmd := exec.Command(filepath.Join(s.bin, bin), args...)
		if cmd.Run() == nil {
			return
		}
		select {
		case <-p.done:
			tb.Fatalf("%s exited before it was healthy: %v\n%s", p.name, p.err, tail(p.log, 30))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not healthy after %s\n%s", p.name, startWait, tail(p.log, 30))
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer lis.Close()
	return strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
}
