package pgtest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"mtlsbank/internal/migrate"
)

// Store is what these checks need of a service's PostgreSQL store (the ledger's and
// the payments'): its schema version and Close.
type Store interface {
	SchemaVersion() int
	Close() error
}

// CheckOpenConcurrently opens n stores on one new database at once, as replicas
// starting together do: every one must open, at schema version want (the migrations
// ran once, under their advisory lock). The stores are closed before it returns.
func CheckOpenConcurrently(t *testing.T, n, want int, open func(ctx context.Context, url string) (Store, error)) {
	t.Helper()
	url := NewDatabase(t)
	stores := make([]Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = open(context.Background(), url)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("store %d: %v", i, errs[i])
			continue
		}
		if v := stores[i].SchemaVersion(); v != want {
			t.Errorf("store %d: schema version %d, want %d", i, v, want)
		}
		_ = stores[i].Close()
	}
}

// CheckMigrationStep runs a service's migration step on db, a database Provision made
// for owner and runtime, checking it on the way: before it the runtime role can neither
// migrate nor serve (openRuntime, a store without migrations, fails with errBehind);
// the owner cannot grant the runtime privileges to itself; then the owner migrates and
// grants them to runtime.
func CheckMigrationStep(t *testing.T, owner, runtime Role, db string,
	migrateAs func(ctx context.Context, url, runtimeRole string) (int, error),
	openRuntime func(ctx context.Context, url string) (Store, error), errBehind error) {
	t.Helper()
	ctx := context.Background()
	if _, err := migrateAs(ctx, runtime.URL(db), ""); err == nil {
		t.Fatal("the runtime role migrated the database")
	}
	if s, err := openRuntime(ctx, runtime.URL(db)); !errors.Is(err, errBehind) {
		if err == nil {
			_ = s.Close()
		}
		t.Fatalf("Open on an unmigrated database: %v, want %v", err, errBehind)
	}
	if _, err := migrateAs(ctx, owner.URL(db), owner.Name); !errors.Is(err, migrate.ErrRuntimeRoleIsOwner) {
		t.Fatalf("granting the owner itself: %v, want ErrRuntimeRoleIsOwner", err)
	}
	if v, err := migrateAs(ctx, owner.URL(db), runtime.Name); err != nil || v < 1 {
		t.Fatalf("Migrate as the owner: version %d, %v", v, err)
	}
}
