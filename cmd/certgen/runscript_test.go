package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mtlsbank/internal/devpki"
	"mtlsbank/internal/pki"
)

// refreshInterval is an interval no other process uses, so that the test can find the
// loop's sleep among the machine's processes.
const refreshInterval = "3607"

// TestRunScriptRefreshesCRLs runs scripts/run.sh (what `make run` starts) with the real
// certgen and two stand-in services, and checks that it re-signs CRLs that are due
// while the services run, and that stopping the services stops the loop too.
func TestRunScriptRefreshesCRLs(t *testing.T) {
	root := t.TempDir()
	script, err := os.ReadFile(filepath.Join("..", "..", "scripts", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"scripts", "bin", "certs/dev", "pids"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeExec(t, filepath.Join(root, "scripts", "run.sh"), string(script))
	for _, name := range []string{"accounts", "payments"} {
		writeExec(t, filepath.Join(root, "bin", name), "#!/bin/sh\necho $$ > "+filepath.Join(root, "pids", name)+"\nexec sleep 1000\n")
	}
	build := exec.Command("go", "build", "-o", filepath.Join(root, "bin", "certgen"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// A PKI made two days ago with CRLs valid for three: less than half is left.
	dir := filepath.Join(root, "certs", "dev")
	past := time.Now().Add(-48 * time.Hour)
	p, err := devpki.New(dir, devpki.WithClock(func() time.Time { return past }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	before := crlNumberSum(t, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "run.sh"))
	// A TERM, not a KILL, on timeout: run.sh then stops what it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), "CRL_REFRESH_INTERVAL="+refreshInterval)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("run.sh output:\n%s", out.String())
		}
	})
	waitFor(t, "the loop re-signs the due CRLs", func() bool {
		return strings.Contains(out.String(), "[certgen] wrote certs/dev/"+devpki.CRLFile) && crlNumberSum(t, dir) > before
	})
	for _, crl := range readCRLs(t, dir) {
		if time.Until(crl.NextUpdate) < 71*time.Hour {
			t.Errorf("CRL of %s: next update %s, want about three days from now", crl.Issuer, crl.NextUpdate)
		}
	}
	waitFor(t, "the refresh loop sleeps until its next round", func() bool { return sleeping(t) })

	// One service stops: run.sh stops the other and the loop.
	waitFor(t, "the stand-in services start", func() bool { return pidOf(t, root, "accounts") > 0 && pidOf(t, root, "payments") > 0 })
	if err := syscall.Kill(pidOf(t, root, "accounts"), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-ctx.Done():
		t.Fatalf("run.sh did not exit after a service stopped")
	}
	// The loop kills its sleep on the way out; the orphan may take a moment to go.
	waitFor(t, "the refresh loop's sleep ends", func() bool { return !sleeping(t) })
	if !strings.Contains(out.String(), "a service stopped; stopping the other") {
		t.Errorf("run.sh output:\n%s", out.String())
	}
}

func writeExec(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		tb.Fatal(err)
	}
}

func pidOf(tb testing.TB, root, name string) int {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(root, "pids", name))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// sleeping reports whether a `sleep refreshInterval` process exists (Linux /proc).
func sleeping(tb testing.TB) bool {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatalf("this test reads /proc: %v", err)
	}
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Equal(cmdline, []byte("sleep\x00"+refreshInterval+"\x00")) {
			return true
		}
	}
	return false
}

func crlNumberSum(tb testing.TB, dir string) int64 {
	tb.Helper()
	var sum int64
	for _, crl := range readCRLs(tb, dir) {
		sum += crl.Number.Int64()
	}
	return sum
}

func readCRLs(tb testing.TB, dir string) []*x509.RevocationList {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(dir, devpki.CRLFile))
	if err != nil {
		tb.Fatal(err)
	}
	crls, err := pki.ParseCRLs(data)
	if err != nil {
		tb.Fatal(err)
	}
	return crls
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutines of exec and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
