package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/groupcommit"
	"mtlsbank/internal/money"
)

// Limits on request fields.
const (
	// MaxIdempotencyKeyLen is the longest idempotency key, in bytes.
	MaxIdempotencyKeyLen = 128
	// MaxReferenceLen is the longest transaction reference, in bytes.
	MaxReferenceLen = 256
	// MaxDisplayNameLen is the longest account display name, in bytes.
	MaxDisplayNameLen = 200
)

// Ledger applies the bank's rules to a Store. Money-moving requests and
// account openings go through one committer goroutine that commits them in
// groups (package groupcommit); reads go straight to the store. A Ledger is
// safe for concurrent use.
type Ledger struct {
	store     Store
	cfg       config
	cache     *accountCache // nil without WithAccountCache
	committer *groupcommit.Committer[Tx, result]
	queued    queuedMoves
	closing   chan struct{} // closed by Close: ends every Watch
	close     sync.Once
	watchers  watchers
	// stopFeed ends the store's CommitFeed and feedDone closes when it has.
	stopFeed context.CancelFunc
	feedDone chan struct{}
}

// New returns a Ledger over store and starts its committer. Close it before
// closing the store.
func New(store Store, opts ...Option) (*Ledger, error) {
	if store == nil {
		return nil, errors.New("ledger: store is nil")
	}
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &Ledger{
		store:    store,
		cfg:      cfg,
		closing:  make(chan struct{}),
		watchers: watchers{set: make(map[chan struct{}]struct{})},
	}
	update := store.Update
	if cfg.accountCache > 0 {
		if sw, ok := store.(SoleWriter); !ok || !sw.SoleWriter() {
			return nil, errors.New("ledger: an account cache needs a store that no other process writes (SoleWriter)")
		}
		l.cache = newAccountCache(cfg.accountCache)
		update = keepingCache(store.Update, l.cache)
	}
	var err error
	if l.committer, err = newCommitter(update, cfg, &l.watchers); err != nil {
		return nil, err
	}
	// Commits of other processes on a shared store wake this one's watchers.
	l.feedDone = make(chan struct{})
	var feedCtx context.Context
	feedCtx, l.stopFeed = context.WithCancel(context.Background())
	if feed, ok := store.(CommitFeed); ok {
		go func() {
			defer close(l.feedDone)
			feed.FollowCommits(feedCtx, l.watchers.notify)
		}()
	} else {
		close(l.feedDone)
	}
	return l, nil
}

// Close refuses new requests with ErrClosed, ends every Watch, commits the
// requests already queued and waits for the committer to stop. It does not
// close the store.
func (l *Ledger) Close() error {
	l.close.Do(func() {
		close(l.closing)
		l.stopFeed()
	})
	l.committer.Close()
	<-l.feedDone
	return nil
}

// OpenAccountRequest asks for a new customer account.
type OpenAccountRequest struct {
	// Owner is the SPIFFE ID of the customer, in the ledger's trust domain.
	Owner string
	// Currency is the ISO 4217 code the account holds.
	Currency string
	// DisplayName is an optional label.
	DisplayName string
}

// OpenAccount opens an account with a zero balance.
func (l *Ledger) OpenAccount(ctx context.Context, req OpenAccountRequest) (Account, error) {
	if err := l.checkSPIFFEID("owner", req.Owner); err != nil {
		return Account{}, err
	}
	if err := checkCurrency("currency", req.Currency); err != nil {
		return Account{}, err
	}
	if err := checkText("display_name", req.DisplayName, MaxDisplayNameLen); err != nil {
		return Account{}, err
	}
	id := newAccountID()
	r, err := l.submit(ctx, func(ctx context.Context, tx Tx) (result, error) {
		a := Account{
			ID:          id,
			Owner:       req.Owner,
			Currency:    req.Currency,
			DisplayName: req.DisplayName,
			CreatedAt:   l.now(),
		}
		if err := tx.CreateAccount(ctx, a); err != nil {
			return result{}, fmt.Errorf("create account: %w", err)
		}
		return result{account: a}, nil
	})
	if err != nil {
		return Account{}, err
	}
	return r.account, nil
}

// GetAccount returns the customer account with the id: ErrAccountNotFound if
// there is none. It does not check ownership; see Account.CheckOwner. With
// WithAccountCache it answers from memory what it read before, as long as no
// write to the account has been answered since.
func (l *Ledger) GetAccount(ctx context.Context, id string) (Account, error) {
	aid, err := parseAccountField("id", id)
	if err != nil {
		return Account{}, err
	}
	var gen uint64
	if l.cache != nil {
		if a, ok := l.cache.get(aid); ok {
			return a, nil
		}
		gen = l.cache.generation()
	}
	var a Account
	err = l.viewRead(ctx, func(tx ReadTx) error {
		var found bool
		var err error
		a, found, err = tx.Account(ctx, aid)
		if err != nil {
			return fmt.Errorf("ledger: get account %s: %w", aid, err)
		}
		if !found || a.System {
			return &Error{Field: "id", Err: ErrAccountNotFound, Detail: "no account " + string(aid)}
		}
		return nil
	})
	if err == nil && l.cache != nil {
		l.cache.add(a, gen)
	}
	return a, err
}

// viewRead runs fn, which makes one read, as the store runs it best
// (SingleReader), or in a View.
func (l *Ledger) viewRead(ctx context.Context, fn func(ReadTx) error) error {
	if r, ok := l.store.(SingleReader); ok {
		return r.ViewRead(ctx, fn)
	}
	return l.store.View(ctx, fn)
}

// GetTransaction returns the transaction with the id and its entries.
func (l *Ledger) GetTransaction(ctx context.Context, id string) (Transaction, error) {
	if id == "" {
		return Transaction{}, &Error{Field: "id", Err: ErrMissingField}
	}
	if why := parseID(id, transactionPrefix); why != "" {
		return Transaction{}, &Error{Field: "id", Err: ErrMalformedID, Detail: why}
	}
	tid := TransactionID(id)
	var t Transaction
	err := l.store.View(ctx, func(tx ReadTx) error {
		var found bool
		var err error
		t, found, err = tx.Transaction(ctx, tid)
		if err != nil {
			return fmt.Errorf("ledger: get transaction %s: %w", tid, err)
		}
		if !found {
			return &Error{Field: "id", Err: ErrTransactionNotFound, Detail: "no transaction " + string(tid)}
		}
		return nil
	})
	return t, err
}

// SystemAccounts returns the per-currency system accounts, for audits.
func (l *Ledger) SystemAccounts(ctx context.Context) ([]Account, error) {
	var out []Account
	err := l.store.View(ctx, func(tx ReadTx) error {
		for after := AccountID(""); ; {
			page, err := tx.Accounts(ctx, AccountQuery{System: true, After: after, Limit: MaxPageSize})
			if err != nil {
				return fmt.Errorf("ledger: list system accounts: %w", err)
			}
			out = append(out, page...)
			if len(page) < MaxPageSize {
				return nil
			}
			after = page[len(page)-1].ID
		}
	})
	return out, err
}

// DepositRequest credits a customer account from outside the bank.
type DepositRequest struct {
	// AccountID is the account credited.
	AccountID string
	// Amount is the positive amount, in the account's currency.
	Amount money.Amount
	// IdempotencyKey identifies the request within the Principal's scope.
	IdempotencyKey string
	// Reference is optional free text stored with the transaction.
	Reference string
	// Principal is the SPIFFE ID of the authenticated caller, set by the
	// server, not by the client.
	Principal string
	// OnBehalfOf is the SPIFFE ID of the end user a delegating caller named,
	// or empty. The server sets it only after authorizing the delegation.
	OnBehalfOf string
}

// Deposit credits req.AccountID with req.Amount. Under an idempotency key
// already used by req.Principal it returns the first outcome again, success
// or refusal, or ErrIdempotencyMismatch if the request differs.
func (l *Ledger) Deposit(ctx context.Context, req DepositRequest) (Transaction, error) {
	credit, err := parseAccountField("account_id", req.AccountID)
	if err != nil {
		return Transaction{}, err
	}
	m := &move{
		kind: KindDeposit, credit: credit, creditField: "account_id",
		amount: req.Amount, key: req.IdempotencyKey, reference: req.Reference,
		principal: req.Principal, onBehalfOf: req.OnBehalfOf,
	}
	return l.submitMove(ctx, m)
}

// WithdrawRequest debits a customer account to outside the bank.
type WithdrawRequest struct {
	// AccountID is the account debited.
	AccountID string
	// Amount is the positive amount, in the account's currency.
	Amount money.Amount
	// IdempotencyKey identifies the request within the Principal's scope.
	IdempotencyKey string
	// Reference is optional free text stored with the transaction.
	Reference string
	// Principal is the SPIFFE ID of the authenticated caller.
	Principal string
	// OnBehalfOf is the SPIFFE ID of the end user a delegating caller named,
	// or empty.
	OnBehalfOf string
}

// Withdraw debits req.AccountID by req.Amount; ErrInsufficientFunds if the
// balance is smaller. Idempotent as Deposit is.
func (l *Ledger) Withdraw(ctx context.Context, req WithdrawRequest) (Transaction, error) {
	debit, err := parseAccountField("account_id", req.AccountID)
	if err != nil {
		return Transaction{}, err
	}
	m := &move{
		kind: KindWithdrawal, debit: debit, debitField: "account_id",
		amount: req.Amount, key: req.IdempotencyKey, reference: req.Reference,
		principal: req.Principal, onBehalfOf: req.OnBehalfOf,
	}
	return l.submitMove(ctx, m)
}

// TransferRequest moves money between two customer accounts of the same
// currency.
type TransferRequest struct {
	// FromAccountID is the account debited.
	FromAccountID string
	// ToAccountID is the account credited; not FromAccountID.
	ToAccountID string
	// Amount is the positive amount, in both accounts' currency.
	Amount money.Amount
	// IdempotencyKey identifies the request within the Principal's scope.
	IdempotencyKey string
	// Reference is optional free text stored with the transaction.
	Reference string
	// Principal is the SPIFFE ID of the authenticated caller.
	Principal string
	// OnBehalfOf is the SPIFFE ID of the end user a delegating caller named,
	// or empty. Whether that user may spend from FromAccountID is the
	// caller's check (GetAccount and Account.CheckOwner): owners never
	// change, so the check cannot go stale.
	OnBehalfOf string
	// Void settles IdempotencyKey without moving money; see Transfer. The
	// other fields are those of the transfer being voided: they must match
	// it as a retry's would.
	Void bool
}

// Transfer moves req.Amount from req.FromAccountID to req.ToAccountID.
// Idempotent as Deposit is.
//
// With req.Void, Transfer never moves money. If the key already has an
// outcome, it returns that outcome as a retry would (the transaction, with
// Replayed set, or the original refusal; ErrIdempotencyMismatch if the fields
// differ). Otherwise it records the refusal ErrTransferVoided under the key
// and returns it, so that every later request with the key, a delayed
// original included, is refused and moves nothing. Lookup and record happen
// in the committer's one transaction, so a void and the original it races
// are decided in one order: either the transfer moved and the void replays
// it, or the void was first and the transfer is refused. The per-request
// amount limit does not apply to a void: lowering it must not hide a transfer
// it once allowed.
func (l *Ledger) Transfer(ctx context.Context, req TransferRequest) (Transaction, error) {
	debit, err := parseAccountField("from_account_id", req.FromAccountID)
	if err != nil {
		return Transaction{}, err
	}
	credit, err := parseAccountField("to_account_id", req.ToAccountID)
	if err != nil {
		return Transaction{}, err
	}
	if debit == credit {
		return Transaction{}, &Error{Field: "to_account_id", Err: ErrSelfTransfer}
	}
	m := &move{
		kind: KindTransfer, debit: debit, debitField: "from_account_id",
		credit: credit, creditField: "to_account_id",
		amount: req.Amount, key: req.IdempotencyKey, reference: req.Reference,
		principal: req.Principal, onBehalfOf: req.OnBehalfOf, void: req.Void,
	}
	return l.submitMove(ctx, m)
}

// now is the timestamp of a write, at the microsecond precision that every
// engine stores, so that a replayed result equals the original.
func (l *Ledger) now() time.Time {
	return l.cfg.clock().UTC().Truncate(time.Microsecond)
}

func parseAccountField(field, s string) (AccountID, error) {
	if s == "" {
		return "", &Error{Field: field, Err: ErrMissingField}
	}
	if why := parseID(s, accountPrefix); why != "" {
		return "", &Error{Field: field, Err: ErrMalformedID, Detail: why}
	}
	return AccountID(s), nil
}

// checkSPIFFEID accepts a canonical SPIFFE ID with a path in the ledger's
// trust domain.
func (l *Ledger) checkSPIFFEID(field, s string) error {
	if s == "" {
		return &Error{Field: field, Err: ErrMissingField}
	}
	id, err := spiffeid.FromString(s)
	switch {
	case err != nil:
		return fieldError(field, ErrInvalidSPIFFEID, "%q: %v", clip(s), err)
	case !id.MemberOf(l.cfg.trustDomain):
		return fieldError(field, ErrInvalidSPIFFEID, "%q is not in trust domain %s", clip(s), l.cfg.trustDomain)
	case id.Path() == "":
		return fieldError(field, ErrInvalidSPIFFEID, "%q names the trust domain, not a workload or user", clip(s))
	case id.String() != s:
		return fieldError(field, ErrInvalidSPIFFEID, "%q is not in canonical form %q", clip(s), id.String())
	}
	return nil
}

func checkCurrency(field, code string) error {
	if code == "" {
		return &Error{Field: field, Err: ErrMissingField}
	}
	if _, ok := money.Lookup(code); !ok {
		return fieldError(field, ErrUnknownCurrency, "%q is not an active ISO 4217 code", clip(code))
	}
	return nil
}

func checkText(field, s string, max int) error {
	switch {
	case len(s) > max:
		return fieldError(field, ErrInvalidText, "longer than %d bytes", max)
	case !utf8.ValidString(s):
		return fieldError(field, ErrInvalidText, "not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fieldError(field, ErrInvalidText, "control character %U", r)
		}
	}
	return nil
}

func checkIdempotencyKey(key string) error {
	const field = "idempotency_key"
	if key == "" {
		return &Error{Field: field, Err: ErrMissingField}
	}
	if len(key) > MaxIdempotencyKeyLen {
		return fieldError(field, ErrInvalidIdempotencyKey, "longer than %d bytes", MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return fieldError(field, ErrInvalidIdempotencyKey, "byte %d is not printable ASCII", i)
		}
	}
	return nil
}
