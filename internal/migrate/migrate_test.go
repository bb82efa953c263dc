package migrate_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"mtlsbank/internal/migrate"
	"mtlsbank/internal/pgtest"
	"mtlsbank/internal/sqlitedb"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Two migrations in the shape of the real ones. The second one fails if it runs
// twice (CREATE TABLE without IF NOT EXISTS), so that a race that applies it twice
// shows.
var testFiles = fstest.MapFS{
	"m/0001_init.sql":  {Data: []byte("CREATE TABLE a (id INTEGER PRIMARY KEY);\nINSERT INTO a (id) VALUES (1);\n")},
	"m/0002_more.sql":  {Data: []byte("CREATE TABLE b (id INTEGER PRIMARY KEY);\nALTER TABLE a ADD COLUMN note TEXT NOT NULL DEFAULT '';\n")},
	"m/README.md":      {Data: []byte("not a migration")},
	"other/0001_x.sql": {Data: []byte("CREATE TABLE x (id INTEGER);")},
}

func load(tb testing.TB, fsys fstest.MapFS, dir string) []migrate.Migration {
	tb.Helper()
	ms, err := migrate.Load(fsys, dir)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return ms
}

func openWriter(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	w, r, err := sqlitedb.Open(context.Background(), path, 1, 5*time.Second)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	r.Close()
	tb.Cleanup(func() { w.Close() })
	return w
}

type historyRow struct {
	Version  int
	Name     string
	Checksum string
}

func history(tb testing.TB, db *sql.DB) []historyRow {
	tb.Helper()
	rows, err := db.Query(`SELECT version, name, checksum FROM ` + migrate.HistoryTable + ` ORDER BY version`)
	if err != nil {
		tb.Fatalf("read history: %v", err)
	}
	defer rows.Close()
	var out []historyRow
	for rows.Next() {
		var h historyRow
		if err := rows.Scan(&h.Version, &h.Name, &h.Checksum); err != nil {
			tb.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

func tableExists(tb testing.TB, db *sql.DB, name string) bool {
	tb.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n > 0
}

func TestLoad(t *testing.T) {
	ms := load(t, testFiles, "m")
	if len(ms) != 2 || ms[0].Name != "0001_init.sql" || ms[1].Version != 2 {
		t.Fatalf("loaded %+v", ms)
	}
	for i, name := range []string{"m/0001_init.sql", "m/0002_more.sql"} {
		sum := sha256.Sum256(testFiles[name].Data) // as sha256sum prints it
		if ms[i].Checksum != hex.EncodeToString(sum[:]) || ms[i].SQL != string(testFiles[name].Data) {
			t.Fatalf("%s: checksum %q, SQL %q", name, ms[i].Checksum, ms[i].SQL)
		}
	}

	tests := []struct {
		name string
		fsys fstest.MapFS
	}{
		{"gap", fstest.MapFS{"m/0001_a.sql": {}, "m/0003_c.sql": {}}},
		{"starts at 2", fstest.MapFS{"m/0002_b.sql": {}}},
		{"duplicate version", fstest.MapFS{"m/0001_a.sql": {}, "m/0001_b.sql": {}}},
		{"bad name", fstest.MapFS{"m/1_a.sql": {}}},
		{"upper case", fstest.MapFS{"m/0001_Init.sql": {}}},
		{"empty", fstest.MapFS{"m/notes.txt": {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := migrate.Load(tt.fsys, "m"); !errors.Is(err, migrate.ErrMigrationFiles) {
				t.Fatalf("Load = %v, want ErrMigrationFiles", err)
			}
		})
	}
}

func TestMigrateAppliesOnceAndRecordsChecksums(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	db := openWriter(t, path)
	ms := load(t, testFiles, "m")

	// Version 1 first, as an older build would, then the build with version 2.
	if v, err := migrate.Run(ctx, db, migrate.SQLite{}, ms[:1]); err != nil || v != 1 {
		t.Fatalf("Run(v1) = %d, %v", v, err)
	}
	if tableExists(t, db, "b") {
		t.Fatal("version 2 applied by a build that knows only version 1")
	}
	for range 2 { // the second run is a no-op
		if v, err := migrate.Run(ctx, db, migrate.SQLite{}, ms); err != nil || v != 2 {
			t.Fatalf("Run = %d, %v", v, err)
		}
	}
	got := history(t, db)
	want := []historyRow{{1, "0001_init.sql", ms[0].Checksum}, {2, "0002_more.sql", ms[1].Checksum}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history = %v, want %v", got, want)
	}
	var rows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM a`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("table a has %d rows (%v): migration 1 ran more than once", rows, err)
	}
}

func TestMigrateRefuses(t *testing.T) {
	ctx := context.Background()
	ms := load(t, testFiles, "m")
	editedFS := fstest.MapFS{
		"m/0001_init.sql": {Data: []byte("CREATE TABLE a (id INTEGER PRIMARY KEY); -- edited\nINSERT INTO a (id) VALUES (1);\n")},
		"m/0002_more.sql": testFiles["m/0002_more.sql"],
	}
	edited := load(t, editedFS, "m")
	broken := load(t, fstest.MapFS{
		"m/0001_init.sql": testFiles["m/0001_init.sql"],
		"m/0002_more.sql": testFiles["m/0002_more.sql"],
		"m/0003_bad.sql":  {Data: []byte("CREATE TABLE c (id INTEGER);\nTHIS IS NOT SQL;\n")},
	}, "m")

	tests := []struct {
		name    string
		ms      []migrate.Migration
		wantErr error
		wantMsg string
	}{
		{name: "an applied migration was edited", ms: edited, wantErr: migrate.ErrMigrationChanged, wantMsg: "0001_init.sql"},
		{name: "the database is newer", ms: ms[:1], wantErr: migrate.ErrSchemaTooNew, wantMsg: "version 2 (0002_more.sql), this build knows 1"},
		{name: "a failing migration", ms: broken, wantMsg: "apply migration 0003_bad.sql"},
		{name: "no migrations at all", ms: nil, wantErr: migrate.ErrSchemaTooNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openWriter(t, filepath.Join(t.TempDir(), "db.sqlite"))
			if _, err := migrate.Run(ctx, db, migrate.SQLite{}, ms); err != nil {
				t.Fatal(err)
			}
			before := history(t, db)
			_, err := migrate.Run(ctx, db, migrate.SQLite{}, tt.ms)
			if err == nil {
				t.Fatal("Run: no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Run = %q, want it to say %q", err, tt.wantMsg)
			}
			if after := history(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("history changed by a refused migration: %v -> %v", before, after)
			}
			if tableExists(t, db, "c") {
				t.Fatal("a failed migration left its first statement applied")
			}
		})
	}
}

// TestMigrateAdoptsLegacyTable: a database whose old runner kept its versions in
// another table is taken over, and the old table goes.
func TestMigrateAdoptsLegacyTable(t *testing.T) {
	ctx := context.Background()
	ms := load(t, testFiles, "m")
	tests := []struct {
		name        string
		legacyRows  []int
		wantErr     error
		wantMsg     string
		wantVersion int
	}{
		{name: "at version 1", legacyRows: []int{1}, wantVersion: 2},
		{name: "newer than this build", legacyRows: []int{1, 2, 3}, wantErr: migrate.ErrSchemaTooNew},
		{name: "a gap", legacyRows: []int{1, 3}, wantMsg: "not the 1..N"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openWriter(t, filepath.Join(t.TempDir(), "db.sqlite"))
			if _, err := db.Exec(`CREATE TABLE old_versions (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(ms[0].SQL); err != nil {
				t.Fatal(err)
			}
			for _, v := range tt.legacyRows {
				if _, err := db.Exec(`INSERT INTO old_versions (version, applied_at) VALUES (?, 0)`, v); err != nil {
					t.Fatal(err)
				}
			}
			v, err := migrate.Run(ctx, db, migrate.SQLite{}, ms, migrate.WithLegacyTable("old_versions"))
			if tt.wantErr != nil || tt.wantMsg != "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Run = %v, want %v %q", err, tt.wantErr, tt.wantMsg)
				}
				if !tableExists(t, db, "old_versions") || tableExists(t, db, migrate.HistoryTable) {
					t.Fatal("a refused adoption changed the bookkeeping")
				}
				return
			}
			if err != nil || v != tt.wantVersion {
				t.Fatalf("Run = %d, %v", v, err)
			}
			if tableExists(t, db, "old_versions") {
				t.Fatal("the legacy table is still there")
			}
			if h := history(t, db); len(h) != 2 || h[0].Checksum != ms[0].Checksum {
				t.Fatalf("history = %v", h)
			}
			if !tableExists(t, db, "b") {
				t.Fatal("version 2 not applied after the adoption")
			}
		})
	}
	if _, err := migrate.Run(ctx, openWriter(t, filepath.Join(t.TempDir(), "x.db")), migrate.SQLite{}, ms,
		migrate.WithLegacyTable("x; DROP TABLE a")); err == nil {
		t.Fatal("a legacy table name with SQL in it was accepted")
	}
}

// TestMigrateConcurrently starts several processes' worth of migrators on one file
// at once (each its own connection, as separate processes would have): each must
// succeed and every migration must run exactly once. The upgrade of an existing
// file is the case that needs BEGIN IMMEDIATE: with deferred transactions the
// migrators all read version 1 and then fail with SQLITE_BUSY when they write.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	ms := load(t, testFiles, "m")
	tests := []struct {
		name string
		from int // the version the file is at before the migrators start
	}{
		{"new file", 0},
		{"upgrade from version 1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db.sqlite")
			if tt.from > 0 {
				if _, err := migrate.Run(ctx, openWriter(t, path), migrate.SQLite{}, ms[:tt.from]); err != nil {
					t.Fatal(err)
				}
			}
			const n = 8
			dbs := make([]*sql.DB, n)
			for i := range dbs {
				dbs[i] = openWriter(t, path)
			}
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = migrate.Run(ctx, dbs[i], migrate.SQLite{}, ms)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("migrator %d: %v", i, err)
				}
			}
			if h := history(t, dbs[0]); len(h) != 2 {
				t.Fatalf("history = %v, want 2 rows", h)
			}
		})
	}
}

// openPostgres opens a database/sql pool on a PostgreSQL database, as one
// process of a service would.
func openPostgres(tb testing.TB, url string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestMigrateConcurrentlyPostgres is TestMigrateConcurrently on PostgreSQL:
// eight migrators, each with its own pool as separate replicas would have,
// start at once on one database. Each must succeed and every migration run
// once: the second migration is not idempotent (CREATE TABLE) and the first
// inserts a row, so a migration applied twice fails a migrator or shows as a
// second row. Without the advisory lock (Lock a no-op) both cases fail: the
// migrators race on CREATE TABLE (duplicate key in pg_type_typname_nsp_index).
func TestMigrateConcurrentlyPostgres(t *testing.T) {
	ctx := context.Background()
	ms := load(t, testFiles, "m")
	tests := []struct {
		name string
		from int
	}{
		{"new database", 0},
		{"upgrade from version 1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			if tt.from > 0 {
				if _, err := migrate.Run(ctx, openPostgres(t, url), migrate.Postgres{}, ms[:tt.from]); err != nil {
					t.Fatal(err)
				}
			}
			const n = 8
			dbs := make([]*sql.DB, n)
			for i := range dbs {
				dbs[i] = openPostgres(t, url)
				if err := dbs[i].PingContext(ctx); err != nil { // connected before the start line
					t.Fatal(err)
				}
			}
			errs := make([]error, n)
			versions := make([]int, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					versions[i], errs[i] = migrate.Run(ctx, dbs[i], migrate.Postgres{}, ms)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("migrator %d: %v", i, err)
				} else if versions[i] != 2 {
					t.Errorf("migrator %d: version %d, want 2", i, versions[i])
				}
			}
			h := history(t, dbs[0])
			if len(h) != 2 || h[0].Checksum != ms[0].Checksum || h[1].Checksum != ms[1].Checksum {
				t.Fatalf("history = %v, want the 2 migrations with their checksums", h)
			}
			var rows int
			if err := dbs[0].QueryRowContext(ctx, `SELECT count(*) FROM a`).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != 1 {
				t.Errorf("table a has %d rows: migration 1 ran %d times", rows, rows)
			}
		})
	}
}

// TestMigratePostgres checks the Postgres dialect on the paths the SQLite
// tests cover: a changed migration and a newer schema are refused, and a
// legacy bookkeeping table is adopted and dropped.
func TestMigratePostgres(t *testing.T) {
	ctx := context.Background()
	ms := load(t, testFiles, "m")
	t.Run("refuses", func(t *testing.T) {
		db := openPostgres(t, pgtest.NewDatabase(t))
		if _, err := migrate.Run(ctx, db, migrate.Postgres{}, ms); err != nil {
			t.Fatal(err)
		}
		edited := append([]migrate.Migration(nil), ms...)
		edited[1].SQL += "\n-- edited"
		edited[1].Checksum = fmt.Sprintf("%x", sha256.Sum256([]byte(edited[1].SQL)))
		if _, err := migrate.Run(ctx, db, migrate.Postgres{}, edited); !errors.Is(err, migrate.ErrMigrationChanged) {
			t.Errorf("edited migration: %v, want ErrMigrationChanged", err)
		}
		if _, err := migrate.Run(ctx, db, migrate.Postgres{}, ms[:1]); !errors.Is(err, migrate.ErrSchemaTooNew) {
			t.Errorf("older build: %v, want ErrSchemaTooNew", err)
		}
	})
	t.Run("adopts legacy table", func(t *testing.T) {
		db := openPostgres(t, pgtest.NewDatabase(t))
		if _, err := db.ExecContext(ctx, ms[0].SQL+`;
			CREATE TABLE schema_version (version BIGINT NOT NULL PRIMARY KEY);
			INSERT INTO schema_version (version) VALUES (1);`); err != nil {
			t.Fatal(err)
		}
		v, err := migrate.Run(ctx, db, migrate.Postgres{}, ms, migrate.WithLegacyTable("schema_version"))
		if err != nil || v != 2 {
			t.Fatalf("Run = %d, %v", v, err)
		}
		if h := history(t, db); len(h) != 2 {
			t.Errorf("history = %v, want 2 rows", h)
		}
		var legacy bool
		if err := db.QueryRowContext(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&legacy); err != nil {
			t.Fatal(err)
		}
		if legacy {
			t.Error("the legacy table is still there")
		}
	})
}

// TestCheck: Check changes nothing and says where the database stands: behind
// (fresh, or one migration short), current, edited, or newer than the build.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	ms := load(t, testFiles, "m")
	db := openWriter(t, filepath.Join(t.TempDir(), "check.db"))
	if v, err := migrate.Check(ctx, db, migrate.SQLite{}, ms); !errors.Is(err, migrate.ErrSchemaBehind) || v != 0 {
		t.Fatalf("fresh database: version %d, %v; want 0 and ErrSchemaBehind", v, err)
	}
	if tableExists(t, db, migrate.HistoryTable) {
		t.Fatal("Check created the history table")
	}
	if _, err := migrate.Run(ctx, db, migrate.SQLite{}, ms[:1]); err != nil {
		t.Fatal(err)
	}
	if v, err := migrate.Check(ctx, db, migrate.SQLite{}, ms); !errors.Is(err, migrate.ErrSchemaBehind) || v != 1 ||
		!strings.Contains(err.Error(), "needs 2 (0002_more.sql)") {
		t.Fatalf("one migration short: version %d, %v", v, err)
	}
	if _, err := migrate.Run(ctx, db, migrate.SQLite{}, ms); err != nil {
		t.Fatal(err)
	}
	if v, err := migrate.Check(ctx, db, migrate.SQLite{}, ms); err != nil || v != 2 {
		t.Fatalf("current database: version %d, %v", v, err)
	}
	if _, err := migrate.Check(ctx, db, migrate.SQLite{}, ms[:1]); !errors.Is(err, migrate.ErrSchemaTooNew) {
		t.Fatalf("an older build: %v, want ErrSchemaTooNew", err)
	}
	edited := append([]migrate.Migration(nil), ms...)
	edited[1].Checksum = strings.Repeat("0", 64)
	if _, err := migrate.Check(ctx, db, migrate.SQLite{}, edited); !errors.Is(err, migrate.ErrMigrationChanged) {
		t.Fatalf("an edited migration: %v, want ErrMigrationChanged", err)
	}
}
