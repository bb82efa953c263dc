package dsn_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mtlsbank/internal/dsn"
	"mtlsbank/internal/pki"
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
		// libpq's key=value form, taken as a file name, would start an empty SQLite
		// ledger and write the password into file names (attack2 finding 1).
		{name: "key=value connection string", in: "host=db.example password=" + secret + " dbname=bank", wantErr: dsn.ErrUnsupported},
		{name: "key=value with spaces", in: "  dbname = bank", wantErr: dsn.ErrUnsupported},
		{name: "file name with an equals sign later", in: "data/a=b.db", engine: dsn.SQLite, shown: "data/a=b.db"},
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

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewRootCA("db CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pki.EncodeCertsPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(closed, []byte("*:*:*:bank:Pa55word\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "pgpass-open")
	if err := os.WriteFile(open, []byte("*:*:*:bank:Pa55word\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No ~/.pgpass or ~/.postgresql/root.crt of the developer's.
	t.Setenv("HOME", dir)
	for _, v := range []string{"PGSSLMODE", "PGSSLROOTCERT", "PGPASSFILE", "PGHOST", "PGPASSWORD"} {
		t.Setenv(v, "")
	}
	verified := "postgres://bank@db.internal/accounts?sslmode=verify-full&sslrootcert=" + caFile
	tests := []struct {
		name string
		url  string
		env  map[string]string
		want error // nil: accepted
		msg  string
	}{
		{name: "sqlite", url: "data/accounts.db"},
		{name: "remote, verify-full with a CA file", url: verified},
		{name: "remote, verify-full from the environment", url: "postgres://bank@db.internal/accounts",
			env: map[string]string{"PGSSLMODE": "verify-full", "PGSSLROOTCERT": caFile}},
		{name: "local without TLS", url: "postgres://bank@127.0.0.1:5432/accounts?sslmode=disable"},
		{name: "localhost without TLS", url: "postgres://bank@localhost/accounts?sslmode=disable"},
		{name: "unix socket", url: "postgres:///accounts?host=/run/postgresql"},
		{name: "password file 0600", url: verified + "&passfile=" + closed},
		{name: "PGPASSFILE 0600", url: verified, env: map[string]string{"PGPASSFILE": closed}},
		{name: "password in the user information", url: "postgres://bank:Pa55word@127.0.0.1/accounts", want: dsn.ErrPasswordInURL, msg: "PGPASSFILE"},
		{name: "password parameter", url: "postgres://bank@127.0.0.1/accounts?password=Pa55word", want: dsn.ErrPasswordInURL},
		{name: "key passphrase parameter", url: verified + "&sslpassword=Pa55word", want: dsn.ErrPasswordInURL},
		{name: "remote without sslmode", url: "postgres://bank@db.internal/accounts", want: dsn.ErrServerNotVerified, msg: "prefer (the default)"},
		{name: "remote, disable", url: "postgres://bank@db.internal/accounts?sslmode=disable", want: dsn.ErrServerNotVerified, msg: "without TLS"},
		{name: "remote, require", url: "postgres://bank@db.internal/accounts?sslmode=require", want: dsn.ErrServerNotVerified, msg: "sslmode require"},
		{name: "remote, verify-ca", url: "postgres://bank@db.internal/accounts?sslmode=verify-ca&sslrootcert=" + caFile, want: dsn.ErrServerNotVerified, msg: "verify-ca"},
		{name: "remote, verify-full against the system roots", url: "postgres://bank@db.internal/accounts?sslmode=verify-full", want: dsn.ErrServerNotVerified, msg: "system roots"},
		{name: "remote, sslrootcert=system", url: "postgres://bank@db.internal/accounts?sslmode=verify-full&sslrootcert=system", want: dsn.ErrServerNotVerified, msg: "every public CA"},
		{name: "one of two hosts unverified", url: "postgres://bank@127.0.0.1,db.internal/accounts?sslmode=disable", want: dsn.ErrServerNotVerified, msg: "db.internal"},
		{name: "password file others can read", url: verified + "&passfile=" + open, want: dsn.ErrPassfileOpen, msg: "chmod 0600"},
		{name: "PGPASSFILE others can read", url: verified, env: map[string]string{"PGPASSFILE": open}, want: dsn.ErrPassfileOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			d, err := dsn.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			err = d.Check()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v, want accepted", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Check = %v, want %v with %q", err, tt.want, tt.msg)
			}
			if strings.Contains(err.Error(), "Pa55word") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
