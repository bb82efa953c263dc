package sqlitedb_test

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mtlsbank/internal/ledger/sqlitestore"
	paymentsstore "mtlsbank/internal/payments/sqlitestore"
	"mtlsbank/internal/sqlitedb"
)

// The umask is one per process, so the tests that change it run in a child process:
// the test binary itself, asked to run only TestPrivateFilesChild.
const (
	umaskEnv = "SQLITEDB_TEST_UMASK"
	dirEnv   = "SQLITEDB_TEST_DIR"
)

// TestPrivateFiles checks, under umasks from the most permissive to one that would
// even take the owner's write bit away, that every database file (the file, -wal and
// -shm) is 0600 and every directory Open creates is 0700, for a bare sqlitedb.Open, the
// ledger store and the payments store.
func TestPrivateFiles(t *testing.T) {
	for _, umask := range []int{0o000, 0o022, 0o002, 0o277} {
		t.Run("umask "+strconv.FormatInt(int64(umask), 8), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestPrivateFilesChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), umaskEnv+"="+strconv.FormatInt(int64(umask), 8), dirEnv+"="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestPrivateFilesChild") {
				t.Fatalf("child process: %v\n%s", err, out)
			}
		})
	}
}

// TestPrivateFilesChild is TestPrivateFiles' child; it does nothing unless run by it.
func TestPrivateFilesChild(t *testing.T) {
	mask, dir := os.Getenv(umaskEnv), os.Getenv(dirEnv)
	if mask == "" || dir == "" {
		t.Skip("run by TestPrivateFiles in a child process")
	}
	m, err := strconv.ParseInt(mask, 8, 32)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Umask(int(m))
	ctx := context.Background()
	opens := []struct {
		name string
		open func(tb testing.TB, path string)
	}{
		{name: "sqlitedb", open: func(tb testing.TB, path string) {
			w, r, err := sqlitedb.Open(ctx, path, 1, time.Second)
			if err != nil {
				tb.Fatalf("Open: %v", err)
			}
			defer r.Close()
			defer w.Close()
			write(tb, w) // so that the -wal and -shm exist
			checkFiles(tb, path)
		}},
		{name: "ledger", open: func(tb testing.TB, path string) {
			s, err := sqlitestore.Open(ctx, path)
			if err != nil {
				tb.Fatalf("sqlitestore.Open: %v", err)
			}
			defer s.Close()
			checkFiles(tb, path)
		}},
		{name: "payments", open: func(tb testing.TB, path string) {
			s, err := paymentsstore.Open(ctx, path)
			if err != nil {
				tb.Fatalf("payments sqlitestore.Open: %v", err)
			}
			defer s.Close()
			checkFiles(tb, path)
		}},
	}
	for _, o := range opens {
		t.Run(o.name+"/new directories", func(t *testing.T) {
			base := filepath.Join(dir, o.name, "new")
			o.open(t, filepath.Join(base, "data", "bank.db"))
			wantMode(t, base, fs.ModeDir|0o700)
			wantMode(t, filepath.Join(base, "data"), fs.ModeDir|0o700)
		})
		t.Run(o.name+"/existing readable directory", func(t *testing.T) {
			d := mkdir(t, filepath.Join(dir, o.name, "shared"), 0o755)
			o.open(t, filepath.Join(d, "bank.db"))
			wantMode(t, d, fs.ModeDir|0o755) // the operator's choice; the files are private anyway
		})
		t.Run(o.name+"/existing loose files", func(t *testing.T) {
			d := mkdir(t, filepath.Join(dir, o.name, "old"), 0o700)
			path := filepath.Join(d, "bank.db")
			for _, p := range []string{path, path + "-wal"} {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			o.open(t, path)
		})
	}
}

// TestUnsafeDirectoryRefused: a directory that others may write to lets them replace
// the database or plant a -wal file before the service starts, so Open refuses it,
// creates nothing in it, and says how to fix it.
func TestUnsafeDirectoryRefused(t *testing.T) {
	for _, mode := range []fs.FileMode{0o777, 0o775, 0o757, 0o720, fs.ModeSticky | 0o777} {
		t.Run(mode.String(), func(t *testing.T) {
			d := mkdir(t, filepath.Join(t.TempDir(), "data"), mode)
			path := filepath.Join(d, "bank.db")
			w, r, err := sqlitedb.Open(context.Background(), path, 1, time.Second)
			if err == nil {
				r.Close()
				w.Close()
				t.Fatal("Open accepted a directory others can write to")
			}
			for _, want := range []string{d, "writable by group or others", "chmod go-w"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if entries, _ := os.ReadDir(d); len(entries) != 0 {
				t.Errorf("Open created %d files in the refused directory", len(entries))
			}
		})
	}
	t.Run("owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root can give a directory to another user")
		}
		d := mkdir(t, filepath.Join(t.TempDir(), "data"), 0o700)
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, _, err := sqlitedb.Open(context.Background(), filepath.Join(d, "bank.db"), 1, time.Second)
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("Open = %v, want a refusal of the directory's owner", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := sqlitedb.Open(context.Background(), filepath.Join(file, "bank.db"), 1, time.Second); err == nil {
			t.Fatal("Open accepted a path under a regular file")
		}
	})
}

func write(tb testing.TB, db *sql.DB) {
	tb.Helper()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS t (v INTEGER); INSERT INTO t VALUES (1)`); err != nil {
		tb.Fatal(err)
	}
}

// checkFiles wants the database and its -wal and -shm, all 0600, while it is open.
func checkFiles(tb testing.TB, path string) {
	tb.Helper()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		wantMode(tb, p, 0o600)
	}
}

func wantMode(tb testing.TB, path string, want fs.FileMode) {
	tb.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		tb.Fatalf("stat: %v", err)
	}
	if got := fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSticky); got != want {
		tb.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

// mkdir creates dir with exactly mode, whatever the umask.
func mkdir(tb testing.TB, dir string, mode fs.FileMode) string {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// TestOpenRefusesURLs: a URL given where a file is expected (a PostgreSQL URL
// to a store that only has SQLite, a file: URI, another engine's URL) is
// refused with an error that does not show its password, and creates no file.
func TestOpenRefusesURLs(t *testing.T) {
	for _, tt := range []struct{ name, db string }{
		{"postgres", "postgres://bank:Pa55word@db.internal/payments"},
		{"mysql", "mysql://bank:Pa55word@db.internal/payments"},
		{"file URI", "file:payments.db?mode=memory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			w, r, err := sqlitedb.Open(context.Background(), tt.db, 1, time.Second)
			if err == nil {
				w.Close()
				r.Close()
				t.Fatal("Open accepted a URL")
			}
			if strings.Contains(err.Error(), "Pa55word") {
				t.Errorf("the error shows the password: %v", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("Open created %v", entries)
			}
		})
	}
}
