package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// TableGrant is what a service's runtime role may do with one of its tables,
// in the words of GRANT: "SELECT, INSERT", "SELECT, UPDATE (balance)".
type TableGrant struct {
	Table      string
	Privileges string
}

// privilegeList is what TableGrant.Privileges may hold: privilege names and
// column lists, nothing that ends the statement.
var privilegeList = regexp.MustCompile(`^[A-Z]+( \([a-z_, ]+\))?(, [A-Z]+( \([a-z_, ]+\))?)*$`)

// tableName is a plain lower-case table name.
var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ErrRuntimeRoleIsOwner means the runtime role named for GrantRuntime is the
// role running the migrations (or a superuser): least privilege needs two.
var ErrRuntimeRoleIsOwner = errors.New("the runtime role must not be the migration role or a superuser")

// GrantRuntime gives role exactly grants on the service's tables, PostgreSQL
// only: USAGE on the current schema, SELECT on HistoryTable (so that the service
// can check the schema version, Check), each table's privileges, and nothing
// else on those tables (whatever role held before is revoked first), in one
// transaction. Run by the owner of the tables after Run: the runtime role then
// reads and writes its rows and cannot change the schema (ALTER, DROP, CREATE
// need ownership or CREATE on the schema, which it is not given), nor anything
// grants do not list (an UPDATE of a ledger entry, a DELETE). It refuses a role
// that is the migrating role itself or a superuser, which no grant restricts.
func GrantRuntime(ctx context.Context, db *sql.DB, role string, grants []TableGrant) (err error) {
	if role == "" {
		return errors.New("no runtime role")
	}
	for _, g := range grants {
		if !tableName.MatchString(g.Table) || !privilegeList.MatchString(g.Privileges) {
			return fmt.Errorf("%w: grant %q on %q", ErrMigrationFiles, g.Privileges, g.Table)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin grants: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var schema string
	var same, super bool
	if err := tx.QueryRowContext(ctx, `SELECT current_schema(), $1 = current_user,
		COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = $1), false)`, role).Scan(&schema, &same, &super); err != nil {
		return fmt.Errorf("look up role: %w", err)
	}
	if same || super {
		return fmt.Errorf("%w: %s", ErrRuntimeRoleIsOwner, role)
	}
	r := pgx.Identifier{role}.Sanitize()
	statements := []string{`GRANT USAGE ON SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` TO ` + r}
	for _, g := range append([]TableGrant{{Table: HistoryTable, Privileges: "SELECT"}}, grants...) {
		statements = append(statements,
			`REVOKE ALL ON TABLE `+g.Table+` FROM `+r,
			`GRANT `+g.Privileges+` ON TABLE `+g.Table+` TO `+r)
	}
	for _, st := range statements {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit grants: %w", err)
	}
	return nil
}

// SchemaPrivileged reports whether the connected role could change the schema
// of its database, PostgreSQL only: a superuser, a role that may CREATE in the
// current schema, or one that owns (or is a member of the owner of) a table in
// it. A service warns when it serves as such a role.
func SchemaPrivileged(ctx context.Context, db *sql.DB) (bool, error) {
	var privileged bool
	err := db.QueryRowContext(ctx, `SELECT
		COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)
		OR COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false)
		OR EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema()
		           AND pg_has_role(current_user, tableowner, 'USAGE'))`).Scan(&privileged)
	if err != nil {
		return false, fmt.Errorf("look up the role's privileges: %w", err)
	}
	return privileged, nil
}

// ProvisionSQL is what an administrator runs once, as a superuser or a role with
// CREATEDB, to host a service's database with least privilege, after creating
// the two login roles (with a password or a client certificate each): the
// database, owned by owner (the migration role: it owns the schema and the
// tables the migration step creates); no access for anyone else; CONNECT for
// runtime (the role the replicas serve as, which the migration step grants
// its table privileges to). The public schema of a PostgreSQL 15 database
// belongs to the database owner, and nobody else may create in it.
func ProvisionSQL(database, owner, runtime string) []string {
	db, o, r := pgx.Identifier{database}.Sanitize(), pgx.Identifier{owner}.Sanitize(), pgx.Identifier{runtime}.Sanitize()
	return []string{
		`CREATE DATABASE ` + db + ` OWNER ` + o,
		`REVOKE ALL ON DATABASE ` + db + ` FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE ` + db + ` TO ` + r,
	}
}
