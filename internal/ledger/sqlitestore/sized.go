package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/writeset"
)

// A sized statement handles many rows at once: an insert of a batch's transactions,
// entries or idempotency records, a read of the records or accounts a batch of
// requests needs. Each costs one statement or a few rather than one per row: a
// statement's own cost (binding, stepping and resetting it through database/sql) was a
// third of a move's (docs/benchmarks.md). Each is prepared for 1, 2, 4, ... 64 rows,
// and n rows go in as many statements as n has binary digits (64 rows a statement for
// what exceeds 127).
type sizedID int

const (
	insertTransactions sizedID = iota
	insertEntries
	insertRecords
	readRecords
	readAccounts
	numSized
)

const maxSizedShift = 6

// sizedStatements are the prepared sized statements, by kind and by the log2 of their
// rows.
type sizedStatements [numSized][maxSizedShift + 1]*sql.Stmt

// sizedSQL returns the statement of kind id for rows rows, and the number of
// arguments of one row.
func sizedSQL(id sizedID, rows int) (string, int) {
	list := func(head string, cols int) string {
		row := "(?" + strings.Repeat(", ?", cols-1) + ")"
		return head + row + strings.Repeat(", "+row, rows-1)
	}
	switch id {
	case insertTransactions:
		return list(`INSERT INTO transactions (id, kind, amount, currency, reference, principal, on_behalf_of,
			created_at, first_sequence, entry_count) VALUES `, 10), 10
	case insertEntries:
		return list(`INSERT INTO entries (`+entryColumns+`) VALUES `, 7), 7
	case insertRecords:
		return list(`INSERT INTO idempotency (principal, idem_key, fingerprint, transaction_id,
			refusal_code, refusal_field, refusal_detail, created_at) VALUES `, 8), 8
	case readRecords:
		// The primary key finds each (SEARCH idempotency USING PRIMARY KEY).
		return list(`SELECT principal, idem_key, fingerprint, COALESCE(transaction_id, ''), refusal_code,
			refusal_field, refusal_detail, created_at FROM idempotency WHERE (principal, idem_key) IN (VALUES `, 2) + `)`, 2
	case readAccounts:
		return `SELECT ` + accountColumns + ` FROM accounts WHERE id IN (?` + strings.Repeat(", ?", rows-1) + `)`, 1
	}
	return "", 0
}

func (ss *sizedStatements) prepare(ctx context.Context, db *sql.DB) error {
	for id := range numSized {
		for shift := range maxSizedShift + 1 {
			q, _ := sizedSQL(id, 1<<shift)
			s, err := db.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare %q: %w", q, err)
			}
			ss[id][shift] = s
		}
	}
	return nil
}

func (ss *sizedStatements) close() error {
	var errs []error
	for id := range ss {
		for i, s := range ss[id] {
			if s != nil {
				errs = append(errs, s.Close())
				ss[id][i] = nil
			}
		}
	}
	return errors.Join(errs...)
}

// runSized runs the statement of kind id over n rows, fill setting the arguments of the
// i-th, in as few statements as n's binary digits; run runs each with its arguments.
func (b *backend) runSized(ctx context.Context, id sizedID, n int, fill func(i int, args []any), run func(*sql.Stmt, []any) error) error {
	_, cols := sizedSQL(id, 1)
	var args []any
	for done := 0; done < n; {
		shift := min(maxSizedShift, bits.Len(uint(n-done))-1)
		rows := 1 << shift
		args = slices.Grow(args[:0], rows*cols)[:rows*cols]
		for i := range rows {
			fill(done+i, args[i*cols:(i+1)*cols])
		}
		if err := run(b.tx.StmtContext(ctx, b.sized[id][shift]), args); err != nil {
			return err
		}
		done += rows
	}
	return nil
}

// insertRows inserts n rows with the sized insert id.
func (b *backend) insertRows(ctx context.Context, id sizedID, n int, fill func(i int, args []any)) error {
	return b.runSized(ctx, id, n, fill, func(s *sql.Stmt, args []any) error {
		if _, err := s.ExecContext(ctx, args...); err != nil {
			return mapError(err)
		}
		return nil
	})
}

// queryRows runs the sized read id over n rows, scan reading each row it returns.
func (b *backend) queryRows(ctx context.Context, id sizedID, n int, fill func(i int, args []any), scan func(scanner) error) error {
	return b.runSized(ctx, id, n, fill, func(s *sql.Stmt, args []any) error {
		rows, err := s.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// ReadMany implements writeset.BatchReader: the idempotency records and accounts a
// batch of moves reads first, in a statement or a few for each kind rather than one per
// row. (The system accounts of currencies, rarely missing from a transaction, are read
// one by one.)
func (b *backend) ReadMany(ctx context.Context, keys []writeset.Key, ids []ledger.AccountID, currencies []string) ([]writeset.Record, []ledger.Account, error) {
	found := make(map[writeset.Key]ledger.IdempotencyRecord, len(keys))
	err := b.queryRows(ctx, readRecords, len(keys), func(i int, args []any) {
		args[0], args[1] = keys[i].Principal, keys[i].Key
	}, func(row scanner) error {
		r, err := scanIdempotency(row)
		if err == nil {
			found[writeset.Key{Principal: r.Principal, Key: r.Key}] = r
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sqlitestore: read idempotency records: %w", err)
	}
	recs := make([]writeset.Record, len(keys))
	for i, k := range keys {
		recs[i].Rec, recs[i].Found = found[k]
	}
	var accounts []ledger.Account
	err = b.queryRows(ctx, readAccounts, len(ids), func(i int, args []any) { args[0] = string(ids[i]) },
		func(row scanner) error {
			a, err := scanAccount(row)
			if err == nil {
				accounts = append(accounts, a)
			}
			return err
		})
	if err != nil {
		return nil, nil, fmt.Errorf("sqlitestore: read accounts: %w", err)
	}
	for _, c := range currencies {
		a, ok, err := b.SystemAccount(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			accounts = append(accounts, a)
		}
	}
	return recs, accounts, nil
}
