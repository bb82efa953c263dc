package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/writeset"
)

// The statements that send a batch's writes: the inserts one per table whatever
// the number of rows, from arrays.
const (
	lockCounter   = `SELECT last_sequence FROM entry_sequence WHERE id = 1 FOR UPDATE`
	writeCounter  = `UPDATE entry_sequence SET last_sequence = $1 WHERE id = 1`
	notifyCommit  = `SELECT pg_notify($1, '')`
	beginWrite    = `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE`
	commitWrite   = `COMMIT`
	insertAccount = `INSERT INTO accounts (` + accountColumns + `)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::boolean[], $7::bigint[])`
	// A statement per account: joined to an array, the accounts would be
	// found by whatever plan the server made when the table was small.
	updateBalance      = `UPDATE accounts SET balance = $1 WHERE id = $2`
	insertTransactions = `INSERT INTO transactions (id, kind, amount, currency, reference, principal, on_behalf_of,
		created_at, first_sequence, entry_count)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
		$8::bigint[], $9::bigint[], $10::int[])`
	insertEntries = `INSERT INTO entries (` + entryColumns + `)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[])`
	insertIdempotency = `INSERT INTO idempotency (principal, idem_key, fingerprint, transaction_id, refusal_code,
		refusal_field, refusal_detail, created_at)
		SELECT p, k, f, NULLIF(t, ''), c, fl, d, at FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[],
		$5::text[], $6::text[], $7::text[], $8::bigint[]) AS r (p, k, f, t, c, fl, d, at)`
)

// pipeline is statements sent in one round trip, each with the number of rows
// it must change (-1: any).
type pipeline struct {
	b    pgx.Batch
	rows []int64
}

func (p *pipeline) queue(rows int64, sql string, args ...any) {
	p.b.Queue(sql, args...)
	p.rows = append(p.rows, rows)
}

// begin starts the transaction and locks the counter row, in one round trip, and
// returns the counter.
func begin(ctx context.Context, conn *pgxpool.Conn) (int64, error) {
	b := &pgx.Batch{}
	b.Queue(beginWrite)
	b.Queue(lockCounter)
	br := conn.SendBatch(ctx, b)
	var counter int64
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&counter)
	}
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: begin and lock the sequence counter: %w", err)
	}
	return counter, nil
}

// queueSteps queues what the write transaction hands over: the writes of each group,
// and the statements of savepoints.
func (p *pipeline) queueSteps(steps []writeset.Step) {
	for _, s := range steps {
		switch s.Kind {
		case writeset.StepWrites:
			p.queueGroup(s.Group)
		case writeset.StepSavepoint:
			p.queue(-1, "SAVEPOINT "+s.Name)
		case writeset.StepRelease:
			p.queue(-1, "RELEASE SAVEPOINT "+s.Name)
		case writeset.StepRollback:
			p.queue(-1, "ROLLBACK TO SAVEPOINT "+s.Name)
			p.queue(-1, "RELEASE SAVEPOINT "+s.Name)
		}
	}
}

// commit sends the writes not sent yet, the counter, the announcement of new
// entries and the COMMIT in one round trip.
func commit(ctx context.Context, conn *pgxpool.Conn, tx *writeset.Tx) error {
	if err := tx.Err(); err != nil {
		return err
	}
	p := &pipeline{}
	p.queueSteps(tx.Pending())
	if taken, last := tx.Counter(); last != taken {
		p.queue(1, writeCounter, last)
	}
	if tx.SentEntries() {
		// Delivered to the listeners at commit, and only if it commits.
		p.queue(-1, notifyCommit, commitChannel)
	}
	p.queue(-1, commitWrite)
	return p.send(ctx, conn)
}

// send runs a pipeline and checks what each statement changed. A unique
// violation is a row another transaction committed first: ledger.ErrConflict.
func (p *pipeline) send(ctx context.Context, conn *pgxpool.Conn) error {
	br := conn.SendBatch(ctx, &p.b)
	var err error
	for i, want := range p.rows {
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err != nil {
			err = conflict(err)
			break
		}
		if want >= 0 && tag.RowsAffected() != want {
			err = fmt.Errorf("pgstore: %s changed %d rows, want %d", tag, tag.RowsAffected(), want)
			break
		}
		if p.b.QueuedQueries[i].SQL == commitWrite && tag.String() != "COMMIT" {
			err = fmt.Errorf("pgstore: commit answered %q", tag)
			break
		}
	}
	if closeErr := br.Close(); err == nil && closeErr != nil {
		err = conflict(closeErr)
	}
	if err != nil {
		return fmt.Errorf("pgstore: send writes: %w", err)
	}
	return nil
}

// conflict marks a unique violation as ledger.ErrConflict and
// ledger.ErrDuplicateKey, and any row the server refused (a data exception, an
// integrity constraint, an exception raised by a trigger: SQLSTATE classes 22, 23
// and P0) as ledger.ErrNotWritten: the server reported it, so the transaction
// aborted and its COMMIT, if sent after it, rolled back. A lost connection is none of
// these: the commit may have taken effect.
func conflict(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	if pe.Code == uniqueViolation {
		return fmt.Errorf("%w (%w, %w): %v", ledger.ErrConflict, ledger.ErrDuplicateKey, ledger.ErrNotWritten, err)
	}
	switch pe.Code[:2] {
	case "22", "23", "P0":
		return fmt.Errorf("%w: %w", ledger.ErrNotWritten, err)
	}
	return err
}

// queueGroup queues a group's statements: one insert per table, one update per
// account.
func (p *pipeline) queueGroup(g *writeset.Group) {
	if n := len(g.Accounts); n > 0 {
		ids, owners, currencies, names := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		balances, created, system := make([]int64, n), make([]int64, n), make([]bool, n)
		for i, a := range g.Accounts {
			ids[i], owners[i], currencies[i], names[i] = string(a.ID), a.Owner, a.Currency, a.DisplayName
			balances[i], created[i], system[i] = a.Balance, a.CreatedAt.UnixMicro(), a.System
		}
		p.queue(int64(n), insertAccount, ids, owners, currencies, balances, names, system, created)
	}
	for _, b := range g.Balances {
		p.queue(1, updateBalance, b.Balance, string(b.ID))
	}
	if n := len(g.Transactions); n > 0 {
		ids, kinds, currencies, refs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		principals, onBehalf := make([]string, n), make([]string, n)
		amounts, created, firsts, counts := make([]int64, n), make([]int64, n), make([]int64, n), make([]int32, n)
		var entries []ledger.Entry
		for i, t := range g.Transactions {
			ids[i], kinds[i], currencies[i], refs[i] = string(t.ID), string(t.Kind), t.Currency, t.Reference
			principals[i], onBehalf[i] = t.Principal, t.OnBehalfOf
			amounts[i], created[i], firsts[i], counts[i] = t.Amount, t.CreatedAt.UnixMicro(), t.Entries[0].Sequence, int32(len(t.Entries))
			entries = append(entries, t.Entries...)
		}
		p.queue(int64(n), insertTransactions, ids, kinds, amounts, currencies, refs, principals, onBehalf, created, firsts, counts)

		m := len(entries)
		seqs, amts, after, at := make([]int64, m), make([]int64, m), make([]int64, m), make([]int64, m)
		txIDs, accts, curs := make([]string, m), make([]string, m), make([]string, m)
		for i, e := range entries {
			seqs[i], txIDs[i], accts[i], amts[i] = e.Sequence, string(e.TransactionID), string(e.AccountID), e.Amount
			curs[i], after[i], at[i] = e.Currency, e.BalanceAfter, e.CreatedAt.UnixMicro()
		}
		p.queue(int64(m), insertEntries, seqs, txIDs, accts, amts, curs, after, at)
	}
	if n := len(g.Records); n > 0 {
		principals, keys, txIDs, codes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		fields, details := make([]string, n), make([]string, n)
		fingerprints, created := make([][]byte, n), make([]int64, n)
		for i, r := range g.Records {
			principals[i], keys[i], txIDs[i], codes[i] = r.Principal, r.Key, string(r.TransactionID), r.RefusalCode
			fields[i], details[i], fingerprints[i], created[i] = r.RefusalField, r.RefusalDetail, r.Fingerprint, r.CreatedAt.UnixMicro()
		}
		p.queue(int64(n), insertIdempotency, principals, keys, fingerprints, txIDs, codes, fields, details, created)
	}
}
