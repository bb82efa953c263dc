package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitTimeout bounds every wait for a condition; generous, because two cores are shared.
const waitTimeout = 60 * time.Second

// TestMain removes the binaries the tests built (once, for all of them). Run as a load
// client of TestSPIRE (loadClientEnv set), it is that client instead.
func TestMain(m *testing.M) {
	if os.Getenv(loadClientEnv) != "" {
		os.Exit(runLoadClient())
	}
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built holds the binaries of accounts, payments, bankctl and certgen, built once per
// test binary for every test of the package (they run one after another).
var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds accounts, payments, bankctl and certgen on first use and returns the
// directory holding them.
func binaries(ctx context.Context, tb testing.TB, root string) string {
	tb.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "e2e-bin-"); built.err != nil {
			return
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", built.dir+string(filepath.Separator),
			"./services/accounts", "./services/payments", "./client/bankctl", "./cmd/certgen")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		tb.Fatal(built.err)
	}
	return built.dir
}

// run runs a command in dir and returns its combined output; a failure ends the test
// with that output.
func run(ctx context.Context, tb testing.TB, dir string, env []string, name string, args ...string) string {
	tb.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// repoRoot is the module root, two levels above this package.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// freePorts returns n loopback ports that were free a moment ago. They are all held
// open at once so that they are distinct.
func freePorts(tb testing.TB, n int) []string {
	tb.Helper()
	ports := make([]string, 0, n)
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer lis.Close()
		ports = append(ports, strconv.Itoa(lis.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// services are accounts and payments running as processes on loopback ports, on a
// fresh dev PKI that certgen wrote into certs.
type services struct {
	certs                      string
	accountsAddr, paymentsAddr string
}

// startServices writes a fresh dev PKI with certgen and starts accounts and payments on
// free loopback ports, each with its own SQLite file; it returns once payments is ready
// (its /readyz checks that accounts answers too). The test's cleanup stops both.
func startServices(ctx context.Context, tb testing.TB, bin string) services {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "services")
	if err := os.Mkdir(dir, 0o700); err != nil { // the services refuse a data directory others may write to
		tb.Fatal(err)
	}
	s := services{certs: filepath.Join(dir, "certs")}
	run(ctx, tb, dir, nil, filepath.Join(bin, "certgen"), "--dir", s.certs)
	ports := freePorts(tb, 4)
	s.accountsAddr, s.paymentsAddr = "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1]
	common := func(name, listen, metrics string) []string {
		return []string{
			"--listen", listen, "--metrics-listen", metrics,
			"--db", filepath.Join(dir, name+".db"),
			"--cert", filepath.Join(s.certs, name+".crt"), "--key", filepath.Join(s.certs, name+".key"),
			"--ca", filepath.Join(s.certs, "ca.crt"), "--intermediates", filepath.Join(s.certs, "intermediates.crt"),
			"--crl", filepath.Join(s.certs, "crl.pem"), "--audit-key", filepath.Join(s.certs, name+"-audit.key"),
		}
	}
	accounts := startProcess(tb, filepath.Join(bin, "accounts"), common("accounts", s.accountsAddr, "127.0.0.1:"+ports[2])...)
	payments := startProcess(tb, filepath.Join(bin, "payments"),
		append(common("payments", s.paymentsAddr, "127.0.0.1:"+ports[3]), "--accounts-addr", s.accountsAddr)...)
	waitReady(tb, "http://127.0.0.1:"+ports[3]+"/readyz", accounts, payments)
	return s
}

// process is a running service binary.
type process struct {
	cmd  *exec.Cmd
	out  bytes.Buffer  // stdout and stderr; read only after done
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// startProcess runs bin with args. The test's cleanup stops it (SIGTERM, then SIGKILL
// after waitTimeout) and prints its output if the test failed.
func startProcess(tb testing.TB, bin string, args ...string) *process {
	tb.Helper()
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(waitTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if tb.Failed() {
			tb.Logf("output of %s (pid %d):\n%s", filepath.Base(bin), p.cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

// waitReady polls url until it answers 200, failing the test if any of procs exits
// first or waitTimeout passes.
func waitReady(tb testing.TB, url string, procs ...*process) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		for _, p := range procs {
			select {
			case <-p.done:
				tb.Fatalf("%s exited before it was ready: %v", filepath.Base(p.cmd.Path), p.err)
			default:
			}
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond) // poll interval, not a synchronisation
	}
	tb.Fatalf("%s not ready after %v: %v", url, waitTimeout, last)
}
