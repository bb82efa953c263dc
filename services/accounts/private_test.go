package main

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const privateChildEnv = "ACCOUNTS_TEST_PRIVATE_CHILD"

// TestDataFilesPrivate runs the service as bin/accounts does, under umask 000 (a child
// process, since the umask is one per process), with --db in a data directory that does
// not exist yet: the directory must come out 0700 and the database, -wal and -shm 0600.
func TestDataFilesPrivate(t *testing.T) {
	if os.Getenv(privateChildEnv) != "" {
		t.Skip("the child runs TestDataFilesPrivateChild")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDataFilesPrivateChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), privateChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDataFilesPrivateChild") {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}

// TestDataFilesPrivateChild is TestDataFilesPrivate's child.
func TestDataFilesPrivateChild(t *testing.T) {
	if os.Getenv(privateChildEnv) == "" {
		t.Skip("run by TestDataFilesPrivate in a child process")
	}
	syscall.Umask(0)
	f := newFixture(t)
	data := filepath.Join(t.TempDir(), "var", "data")
	db := filepath.Join(data, "accounts.db")
	args := []string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--db", db, "--cert", f.cfg.Cert,
		"--key", f.cfg.Key, "--ca", f.cfg.CA, "--crl", f.cfg.CRL, "--audit-key", f.cfg.AuditKey}
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, io.Discard, slog.New(slog.NewJSONHandler(logs, nil)))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for logs.count(`"msg":"accounts serving"`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the service did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, c := range []struct {
		path string
		want fs.FileMode
	}{
		{filepath.Dir(data), fs.ModeDir | 0o700},
		{data, fs.ModeDir | 0o700},
		{db, 0o600},
		{db + "-wal", 0o600},
		{db + "-shm", 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if got := fi.Mode() & (fs.ModeType | fs.ModePerm); got != c.want {
			t.Errorf("%s has mode %v, want %v", c.path, got, c.want)
		}
	}
}
