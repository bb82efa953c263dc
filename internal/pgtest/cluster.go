package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mtlsbank/internal/pgcluster"
)

// Cluster is a PostgreSQL cluster of one test's own, for a test that crashes the
// server (Kill, Restart): the harness's shared server must not go down under the
// other tests of the binary. It needs the server binaries (BANK_TEST_POSTGRES
// names a server no test may kill); without them the test skips, or fails with
// BANK_REQUIRE_POSTGRES=1. It is stopped and removed when the test ends.
type Cluster struct {
	srv *server
}

// NewCluster starts a cluster for the test alone.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	if _, err := pgcluster.FindBinDir(); err != nil {
		if os.Getenv(EnvRequire) == "1" {
			tb.Fatalf("pgtest: %s=1 but this test needs a cluster of its own: %v", EnvRequire, err)
		}
		tb.Skipf("pgtest: this test needs a cluster of its own: %v", err)
	}
	s := &server{clientDir: tb.TempDir()}
	s.passfile = filepath.Join(s.clientDir, "pgpass")
	if err := os.WriteFile(s.passfile, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.startCluster(ctx); err != nil {
		tb.Fatalf("pgtest: start a cluster: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.cluster.Stop(); err != nil {
			tb.Errorf("pgtest: stop the cluster: %v", err)
		}
	})
	return &Cluster{srv: s}
}

// NewRole creates a login role on the cluster, as NewRole does on the shared
// server (its password in c.PassFile).
func (c *Cluster) NewRole(tb testing.TB) Role {
	tb.Helper()
	return newRole(tb, c.srv, true)
}

// Provision creates a database on the cluster, as Provision does on the shared
// server.
func (c *Cluster) Provision(tb testing.TB, owner, runtime Role) string {
	tb.Helper()
	return provision(tb, c.srv, owner, runtime)
}

// PassFile is the cluster's password file, with a line for each of its roles:
// give it to a child process as PGPASSFILE.
func (c *Cluster) PassFile() string { return c.srv.passfile }

// Kill kills the cluster's postmaster with SIGKILL (by its pid, so only this
// cluster) and waits until its processes are gone.
func (c *Cluster) Kill(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.srv.cluster.Kill(ctx); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// Restart starts the killed cluster again on the same port.
func (c *Cluster) Restart(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.srv.cluster.Restart(ctx); err != nil {
		tb.Fatalf("pgtest: restart the cluster: %v", err)
	}
}
