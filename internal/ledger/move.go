package ledger

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"sync"
	"time"

	"mtlsbank/internal/money"
)

// move is a validated money-moving request. An empty debit or credit is the
// system account of the currency.
type move struct {
	kind          Kind
	debit, credit AccountID
	debitField    string
	creditField   string
	amount        money.Amount
	key           string
	reference     string
	principal     string
	onBehalfOf    string
	// void settles the key without moving money (TransferRequest.Void). It is
	// not part of the fingerprint: a void matches the request it voids.
	void        bool
	fingerprint []byte
	// reads is what it reads first (prefetch), for a Prefetcher.
	reads Prefetch
}

// validate refuses malformed input. Nothing it refuses is recorded under the
// idempotency key: such a request never reached the ledger's state.
func (l *Ledger) validate(m *move) error {
	if err := l.checkSPIFFEID("principal", m.principal); err != nil {
		return err
	}
	if m.onBehalfOf != "" {
		if err := l.checkSPIFFEID("on_behalf_of", m.onBehalfOf); err != nil {
			return err
		}
	}
	if err := checkCurrency("amount.currency_code", m.amount.Currency); err != nil {
		return err
	}
	if m.amount.Minor <= 0 {
		return fieldError("amount.minor_units", ErrInvalidAmount, "%s", m.amount)
	}
	if max, _ := l.cfg.maxAmount.Max(m.amount.Currency); m.amount.Minor > max && !m.void {
		return fieldError("amount.minor_units", ErrAmountTooLarge, "%s is more than the largest amount of one request, %s",
			m.amount, money.Format(max, m.amount.Currency))
	}
	if err := checkIdempotencyKey(m.key); err != nil {
		return err
	}
	return checkText("reference", m.reference, MaxReferenceLen)
}

// fingerprintOf hashes the operation and every request field, each length
// prefixed so that no two requests share an encoding. The principal and key
// are the record's scope and are left out.
func fingerprintOf(m *move) []byte {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field("mtlsbank.ledger.move.v1")
	field(string(m.kind))
	field(string(m.debit))
	field(string(m.credit))
	field(m.amount.Currency)
	field(strconv.FormatInt(m.amount.Minor, 10))
	field(m.reference)
	field(m.onBehalfOf)
	return h.Sum(nil)
}

func (l *Ledger) submitMove(ctx context.Context, m *move) (Transaction, error) {
	if err := l.validate(m); err != nil {
		return Transaction{}, err
	}
	m.fingerprint = fingerprintOf(m)
	m.reads = m.prefetch()
	queued := l.queued.add(m)
	defer l.queued.remove(queued)
	r, err := l.submit(ctx, func(ctx context.Context, tx Tx) (result, error) {
		if p, ok := tx.(Prefetcher); ok {
			if err := p.Prefetch(ctx, l.queued.reads(queued, l.cfg.maxBatch)); err != nil {
				return result{}, fmt.Errorf("prefetch: %w", err)
			}
		}
		return l.runMove(ctx, tx, m)
	})
	if err != nil {
		return Transaction{}, err
	}
	txn := r.txn
	txn.Replayed = !r.wrote
	return txn, nil
}

// duplicateKey marks an idempotency insert that lost a race with another
// writer of the same key.
func duplicateKey() error {
	return &Error{Field: "idempotency_key", Err: ErrConcurrentRequest, Detail: "retry to get its outcome"}
}

// runMove decides one request inside the committer's transaction. Its error
// is an infrastructure failure that aborts the whole batch; the request's
// own outcome, success or refusal, is in the result.
func (l *Ledger) runMove(ctx context.Context, tx Tx, m *move) (result, error) {
	rec, found, err := tx.Idempotency(ctx, m.principal, m.key)
	if err != nil {
		return result{}, fmt.Errorf("read idempotency record: %w", err)
	}
	if found {
		return replay(ctx, tx, m, rec)
	}
	if m.void {
		return l.recordRefusal(ctx, tx, m, &Error{Field: "idempotency_key", Err: ErrTransferVoided,
			Detail: "the caller voided this key before any transfer under it ran; nothing moved and nothing will"})
	}

	var txn Transaction
	err = tx.Savepoint(ctx, func(tx Tx) error {
		var err error
		if txn, err = l.apply(ctx, tx, m); err != nil {
			return err
		}
		err = tx.CreateIdempotency(ctx, IdempotencyRecord{
			Principal: m.principal, Key: m.key, Fingerprint: m.fingerprint,
			TransactionID: txn.ID, CreatedAt: txn.CreatedAt,
		})
		if errors.Is(err, ErrDuplicateKey) {
			return duplicateKey()
		}
		return err
	})
	if err == nil {
		return result{txn: txn, wrote: true}, nil
	}
	if errors.Is(err, ErrConcurrentRequest) {
		return result{err: err}, nil
	}
	return l.recordRefusal(ctx, tx, m, err)
}

// prefetch is what runMove reads first: the idempotency record and the two
// sides (side), a void none but the record.
func (m *move) prefetch() Prefetch {
	p := Prefetch{Principal: m.principal, Key: m.key}
	if m.void {
		return p
	}
	for _, id := range []AccountID{m.debit, m.credit} {
		if id == "" {
			p.SystemCurrency = m.amount.Currency
		} else {
			p.Accounts = append(p.Accounts, id)
		}
	}
	return p
}

// queuedMoves are the moves submitted and not yet answered, in the order they
// were submitted: the committer runs them in that order, so those behind the
// one running are mostly in its batch, and it prefetches for them too.
type queuedMoves struct {
	mu    sync.Mutex
	moves list.List // of *move
}

func (q *queuedMoves) add(m *move) *list.Element {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.moves.PushBack(m)
}

func (q *queuedMoves) remove(e *list.Element) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moves.Remove(e)
}

// reads yields what the move of e reads first, then, if asked for more, what
// at most max-1 of the moves queued behind it do.
func (q *queuedMoves) reads(e *list.Element, max int) iter.Seq[Prefetch] {
	return func(yield func(Prefetch) bool) {
		if !yield(e.Value.(*move).reads) {
			return
		}
		q.mu.Lock()
		var behind []*move
		for next := e.Next(); next != nil && len(behind) < max-1; next = next.Next() {
			behind = append(behind, next.Value.(*move))
		}
		q.mu.Unlock()
		for _, m := range behind {
			if !yield(m.reads) {
				return
			}
		}
	}
}

// recordRefusal records err under m's key when it is a refusal the ledger
// records (refusalCode) and returns it as m's outcome; any other error aborts
// the batch.
func (l *Ledger) recordRefusal(ctx context.Context, tx Tx, m *move, err error) (result, error) {
	refusal, code, ok := refusalCode(err)
	if !ok {
		return result{}, err
	}
	// The refusal is recorded so that the key keeps refusing even after the
	// state changes (a later deposit does not revive an overdraft).
	err = tx.Savepoint(ctx, func(tx Tx) error {
		err := tx.CreateIdempotency(ctx, IdempotencyRecord{
			Principal: m.principal, Key: m.key, Fingerprint: m.fingerprint,
			RefusalCode: code, RefusalField: refusal.Field, RefusalDetail: refusal.Detail,
			CreatedAt: l.now(),
		})
		if errors.Is(err, ErrDuplicateKey) {
			return duplicateKey()
		}
		return err
	})
	switch {
	case errors.Is(err, ErrConcurrentRequest):
		return result{err: err}, nil
	case err != nil:
		return result{}, fmt.Errorf("record refusal: %w", err)
	}
	return result{err: refusal}, nil
}

// replay returns the recorded outcome of an idempotency key.
func replay(ctx context.Context, tx ReadTx, m *move, rec IdempotencyRecord) (result, error) {
	if !bytes.Equal(rec.Fingerprint, m.fingerprint) {
		return result{err: &Error{Field: "idempotency_key", Err: ErrIdempotencyMismatch,
			Detail: "the key was first used with other request fields"}}, nil
	}
	if rec.TransactionID != "" {
		t, found, err := tx.Transaction(ctx, rec.TransactionID)
		if err != nil {
			return result{}, fmt.Errorf("read transaction %s: %w", rec.TransactionID, err)
		}
		if !found {
			return result{}, fmt.Errorf("idempotency record names missing transaction %s", rec.TransactionID)
		}
		return result{txn: t}, nil
	}
	refusal, ok := refusalFromCode(rec.RefusalCode, rec.RefusalField, rec.RefusalDetail)
	if !ok {
		return result{}, fmt.Errorf("idempotency record has unknown refusal code %q", rec.RefusalCode)
	}
	return result{err: refusal}, nil
}

// apply checks the request against the accounts and writes the transaction:
// two entries that sum to zero, and the two new balances.
func (l *Ledger) apply(ctx context.Context, tx Tx, m *move) (Transaction, error) {
	now := l.now()
	debit, err := l.side(ctx, tx, m.debit, m.debitField, m.amount.Currency, now)
	if err != nil {
		return Transaction{}, err
	}
	credit, err := l.side(ctx, tx, m.credit, m.creditField, m.amount.Currency, now)
	if err != nil {
		return Transaction{}, err
	}
	amount := m.amount.Minor
	// Only a deposit (debit is the system account) raises the money customers hold;
	// see the proof in limits.go for why this check keeps every balance in range.
	if debit.System {
		capacity, _ := l.cfg.maxSupply.Max(m.amount.Currency)
		if amount > supplyHeadroom(debit.Balance, capacity) {
			return Transaction{}, fieldError("amount.minor_units", ErrSupplyLimit,
				"customer accounts may hold at most %s together, and a deposit of %s would pass it",
				money.Format(capacity, m.amount.Currency), m.amount)
		}
	}
	switch {
	case !debit.System && debit.Balance < amount:
		return Transaction{}, fieldError(m.debitField, ErrInsufficientFunds,
			"account %s cannot pay %s", debit.ID, m.amount)
	case debit.System && debit.Balance < math.MinInt64+amount:
		return Transaction{}, fieldError("amount.minor_units", ErrBalanceOverflow,
			"the bank cannot hold more %s", m.amount.Currency)
	case credit.Balance > math.MaxInt64-amount:
		return Transaction{}, fieldError("amount.minor_units", ErrBalanceOverflow,
			"account %s cannot hold %s more", credit.ID, m.amount)
	}

	first, err := tx.AllocateSequences(ctx, 2)
	if err != nil {
		return Transaction{}, fmt.Errorf("allocate sequences: %w", err)
	}
	t := Transaction{
		ID:         newTransactionID(),
		Kind:       m.kind,
		Amount:     amount,
		Currency:   m.amount.Currency,
		Reference:  m.reference,
		CreatedAt:  now,
		Principal:  m.principal,
		OnBehalfOf: m.onBehalfOf,
	}
	t.Entries = []Entry{
		{Sequence: first, TransactionID: t.ID, AccountID: debit.ID, Amount: -amount,
			Currency: t.Currency, BalanceAfter: debit.Balance - amount, CreatedAt: now},
		{Sequence: first + 1, TransactionID: t.ID, AccountID: credit.ID, Amount: amount,
			Currency: t.Currency, BalanceAfter: credit.Balance + amount, CreatedAt: now},
	}
	for _, e := range t.Entries {
		if err := tx.SetBalance(ctx, e.AccountID, e.BalanceAfter); err != nil {
			return Transaction{}, fmt.Errorf("set balance of %s: %w", e.AccountID, err)
		}
	}
	if err := tx.CreateTransaction(ctx, t); err != nil {
		return Transaction{}, fmt.Errorf("create transaction: %w", err)
	}
	return t, nil
}

// side loads one side of a move: the customer account id, or the system
// account of the currency (created on first use) if id is empty.
func (l *Ledger) side(ctx context.Context, tx Tx, id AccountID, field, currency string, now time.Time) (Account, error) {
	if id == "" {
		a, found, err := tx.SystemAccount(ctx, currency)
		if err != nil {
			return Account{}, fmt.Errorf("read system account %s: %w", currency, err)
		}
		if found {
			return a, nil
		}
		a = Account{ID: newAccountID(), Currency: currency, DisplayName: "external " + currency, System: true, CreatedAt: now}
		if err := tx.CreateAccount(ctx, a); err != nil {
			return Account{}, fmt.Errorf("create system account %s: %w", currency, err)
		}
		return a, nil
	}
	a, found, err := tx.Account(ctx, id)
	if err != nil {
		return Account{}, fmt.Errorf("read account %s: %w", id, err)
	}
	if !found || a.System {
		return Account{}, fieldError(field, ErrAccountNotFound, "no account %s", id)
	}
	if a.Currency != currency {
		return Account{}, fieldError("amount.currency_code", ErrCurrencyMismatch,
			"account %s holds %s, not %s", id, a.Currency, currency)
	}
	return a, nil
}
