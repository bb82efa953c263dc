package dsn_test

import (
	"errors"
	"strings"
	"testing"

	"mtlsbank/internal/dsn"
)

func TestParse(t *testing.T) {
	const secret = "Pa55word"
	tests := []struct {
		name    string
		in      string
		engine  dsn.Engine
		wantErr error // nil: any error when engine is 0
		shown   string
	}{
		{name: "relative path", in: "data/accounts.db", engine: dsn.SQLite, shown: "data/accounts.db"},
		{name: "absolute path", in: "/var/lib/bank/accounts.db", engine: dsn.SQLite, shown: "/var/lib/bank/accounts.db"},
		{name: "path with a colon", in: "data/a:b.db", engine: dsn.SQLite, shown: "data/a:b.db"},
		{name: "windows drive", in: `C:\bank\accounts.db`, engine: dsn.SQLite, shown: `C:\bank\accounts.db`},
		{name: "postgres URL", in: "postgres://bank:" + secret + "@db.internal:5432/accounts?sslmode=verify-full",
			engine: dsn.Postgres, shown: "postgres://bank:xxxxx@db.internal:5432/accounts?sslmode=verify-full"},
		{name: "postgresql URL", in: "postgresql://bank@db.internal/accounts", engine: dsn.Postgres,
			shown: "postgresql://bank@db.internal/accounts"},
		{name: "password parameters", in: "postgres://bank@db/accounts?password=" + secret + "&sslpassword=" + secret + "&sslmode=verify-full",
			engine: dsn.Postgres, shown: "postgres://bank@db/accounts?password=xxxxx&sslmode=verify-full&sslpassword=xxxxx"},
		{name: "host as a parameter", in: "postgres:///accounts?host=/run/postgresql", engine: dsn.Postgres,
			shown: "postgres:///accounts?host=/run/postgresql"},
		{name: "empty", in: ""},
		{name: "mysql", in: "mysql://bank:" + secret + "@db/accounts", wantErr: dsn.ErrUnsupported},
		{name: "sqlite URL", in: "sqlite:///data/accounts.db", wantErr: dsn.ErrUnsupported},
		{name: "file URL", in: "file:data/accounts.db?mode=memory", wantErr: dsn.ErrUnsupported},
		{name: "file URL with slashes", in: "file:///data/accounts.db", wantErr: dsn.ErrUnsupported},
		{name: "postgres without a host", in: "postgres:accounts"},
		{name: "postgres that does not parse", in: "postgres://bank:" + secret + "@[::1/accounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := dsn.Parse(tt.in)
			if tt.engine == 0 {
				if err == nil {
					t.Fatalf("Parse = %+v, want an error", db)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("Parse error = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if db.Engine != tt.engine {
				t.Errorf("engine = %v, want %v", db.Engine, tt.engine)
			}
			if got := db.String(); got != tt.shown {
				t.Errorf("String = %q, want %q", got, tt.shown)
			}
			if strings.Contains(db.String(), secret) {
				t.Errorf("String shows the password: %s", db)
			}
			if tt.engine == dsn.Postgres && db.URL != tt.in {
				t.Errorf("URL = %q, want the value unchanged", db.URL)
			}
		})
	}
}

func TestRedactUnparsable(t *testing.T) {
	if got := dsn.Redact("postgres://bank:Pa55@word@[::1/db"); strings.Contains(got, "Pa55") || strings.Contains(got, "word") {
		t.Errorf("Redact = %q shows the password", got)
	}
}
