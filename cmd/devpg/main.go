// Command devpg starts and stops the throwaway PostgreSQL cluster of make run-pg: a
// private cluster (internal/pgcluster) with TLS, and for each service a database, a
// schema-owner role and a runtime role as README "Least privilege" says, with random
// passwords in a password file.
//
//	devpg start --dir DIR [--watch-pid PID]   prints shell variables to eval
//	devpg stop --dir DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"

	"mtlsbank/internal/migrate"
	"mtlsbank/internal/pgcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "devpg:", err)
		os.Exit(1)
	}
}

// services are the bank's services, each with a database of its name and the roles
// NAME_owner (runs NAME --migrate) and NAME_app (the replicas).
var services = []string{"accounts", "payments"}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: devpg start|stop --dir DIR")
	}
	fs := flag.NewFlagSet("devpg "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the cluster's directory (start: new or empty)")
	watch := fs.Int("watch-pid", 0, "start: stop the cluster when this process is gone")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return errors.New("usage: devpg start|stop --dir DIR")
	}
	switch args[0] {
	case "start":
		return start(ctx, *dir, *watch, stdout)
	case "stop":
		return pgcluster.StopDir(*dir)
	}
	return fmt.Errorf("unknown command %q: want start or stop", args[0])
}

// start starts the cluster, provisions the services' databases and roles, and prints
// the variables a shell evaluates, quoted: PGPASSFILE and, per service, NAME_OWNER_DB (the
// migration step's --db) and NAME_DB (the replicas' --db), both with
// sslmode=verify-full against the cluster's CA.
func start(ctx context.Context, dir string, watchPID int, stdout io.Writer) (err error) {
	c, err := pgcluster.Start(ctx, pgcluster.Config{Dir: dir, Durable: true, TLS: true, WatchPID: watchPID})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	var passfile []string
	vars := []string{}
	for _, svc := range services {
		owner, app := svc+"_owner", svc+"_app"
		for _, role := range []string{owner, app} {
			password := pgcluster.RandomHex(16)
			if err := c.Exec(ctx, "postgres", "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD '"+password+"'"); err != nil {
				return fmt.Errorf("create role %s: %w", role, err)
			}
			passfile = append(passfile, strings.Join([]string{pgcluster.Host, strconv.Itoa(c.Port), svc, role, password}, ":"))
		}
		for _, st := range migrate.ProvisionSQL(svc, owner, app) {
			if err := c.Exec(ctx, "postgres", st); err != nil {
				return fmt.Errorf("%s: %w", st, err)
			}
		}
		up := strings.ToUpper(svc)
		vars = append(vars, up+"_OWNER_DB="+c.URL(svc, owner), up+"_DB="+c.URL(svc, app))
	}
	pass := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(pass, []byte(strings.Join(passfile, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	for _, v := range append([]string{"PGPASSFILE=" + pass}, vars...) {
		name, value, _ := strings.Cut(v, "=")
		fmt.Fprintf(stdout, "%s=%s\n", name, shellQuote(value))
	}
	return nil
}

// shellQuote quotes s for a POSIX shell: the URLs hold & and ?.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
