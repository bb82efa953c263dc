package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mtlsbank/internal/ledger"
	"mtlsbank/internal/ledger/writeset"
)

// backend is the writeset.Backend of an Update, with as few round trips to the server
// as it can: the server's CPU and this process's go to each statement and each round
// trip far more than to the rows (see docs/benchmarks.md). The write transaction
// (writeset.Tx) keeps the writes in memory and the store sends them in the round trip
// that commits: an insert per table for the whole batch, and each account's last
// balance (flush.go). Reads go as they come, a Prefetch's for a whole batch of
// requests in one round trip (ReadMany); the account rows they return are locked (FOR
// UPDATE) until the transaction ends.
type backend struct {
	reader
	conn *pgxpool.Conn
}

var (
	_ writeset.Backend     = backend{}
	_ writeset.BatchReader = backend{}
)

func newBackend(conn *pgxpool.Conn) backend {
	return backend{reader: reader{q: conn, lock: true}, conn: conn}
}

// Accounts implements ledger.ReadTx without locking the rows it lists.
func (b backend) Accounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	return reader{q: b.conn}.Accounts(ctx, q)
}

// Send implements writeset.Backend in one round trip.
func (b backend) Send(ctx context.Context, steps []writeset.Step) error {
	p := &pipeline{}
	p.queueSteps(steps)
	return p.send(ctx, b.conn)
}

// ReadMany implements writeset.BatchReader: a statement per row, each the index lookup
// the server plans once for the connection, in one round trip. (A join of arrays to a
// table would be one statement, but its plan, a hash join over the whole table say,
// depends on the table's size when the server planned it.)
func (b backend) ReadMany(ctx context.Context, keys []writeset.Key, ids []ledger.AccountID, currencies []string) ([]writeset.Record, []ledger.Account, error) {
	batch := &pgx.Batch{}
	for _, k := range keys {
		batch.Queue(idempotencyRecord, k.Principal, k.Key)
	}
	for _, id := range ids {
		batch.Queue(accountByID+forUpdate, string(id))
	}
	for _, c := range currencies {
		batch.Queue(systemAccount+forUpdate, c)
	}
	br := b.conn.SendBatch(ctx, batch)
	recs := make([]writeset.Record, 0, len(keys))
	var accounts []ledger.Account
	err := func() error {
		for range keys {
			rec, found, err := scanIdempotency(br.QueryRow())
			if err != nil {
				return err
			}
			recs = append(recs, writeset.Record{Rec: rec, Found: found})
		}
		for range len(ids) + len(currencies) {
			a, err := scanAccount(br.QueryRow())
			switch {
			case err == nil:
				accounts = append(accounts, a)
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("pgstore: read account: %w", err)
			}
		}
		return nil
	}()
	if closeErr := br.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("pgstore: prefetch: %w", closeErr)
	}
	if err != nil {
		return nil, nil, err
	}
	return recs, accounts, nil
}
