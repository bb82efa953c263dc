package accounts

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/grpcserver"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/money"
)

// Service implements accountsv1.AccountsServiceServer over a ledger.
//
// Which methods a caller may call is the authorization policy's business, enforced by
// the interceptor before a handler runs. Which accounts it may touch is decided here,
// from the Decision the interceptor leaves in the context, never from role names: when
// the effective principal (Decision.Principal: the end user a delegating caller names,
// else the caller) is own-scope, every account a request names must be owned by it. On
// behalf of an end user the scope is that of the end user's on_behalf rule for the method
// (the policy has already refused a delegated call no such rule covers), and ownership is
// the end user's, never the delegate's.
// Own-scope principals cannot tell an account of someone else from one that does not
// exist: both are PermissionDenied, so account ids cannot be probed. Idempotency keys are
// scoped by the caller's SPIFFE ID (the ledger's Principal), also when it delegates.
type Service struct {
	accountsv1.UnimplementedAccountsServiceServer

	ledger *ledger.Ledger
	logger *slog.Logger
}

// NewService returns the AccountsService over l, which must not be nil. Failures the
// client is not told about (an Internal error, the reason of an ownership refusal) are
// logged to logger; nil discards them.
func NewService(l *ledger.Ledger, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{ledger: l, logger: logger}
}

// Register registers the service on s, such as a *grpcserver.Server.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	accountsv1.RegisterAccountsServiceServer(r, s)
}

// OpenAccount opens an empty account. An own-scope principal may only open accounts it
// owns.
func (s *Service) OpenAccount(ctx context.Context, req *accountsv1.OpenAccountRequest) (*accountsv1.OpenAccountResponse, error) {
	d, err := s.decision(ctx)
	if err != nil {
		return nil, err
	}
	if owner, ownOnly := d.Principal(); ownOnly && req.GetOwner() != owner.String() {
		return nil, s.denied(ctx, "own-scope principal opens an account for another owner",
			principalAttrs(d, slog.String("owner", req.GetOwner()))...)
	}
	a, err := s.ledger.OpenAccount(ctx, ledger.OpenAccountRequest{
		Owner:       req.GetOwner(),
		Currency:    req.GetCurrency(),
		DisplayName: req.GetDisplayName(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &accountsv1.OpenAccountResponse{Account: accountToProto(a)}, nil
}

// GetAccount returns an account. For an own-scope principal an account it does not own
// and an unknown id are both PermissionDenied; a malformed id is InvalidArgument, which
// says nothing about which accounts exist.
func (s *Service) GetAccount(ctx context.Context, req *accountsv1.GetAccountRequest) (*accountsv1.GetAccountResponse, error) {
	d, err := s.decision(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.ownedAccount(ctx, d, req.GetId(), "id")
	if err != nil {
		return nil, err
	}
	return &accountsv1.GetAccountResponse{Account: accountToProto(a)}, nil
}

// ListAccounts returns a page of accounts. For an own-scope principal the owner filter
// defaults to the principal, and naming another owner is PermissionDenied.
func (s *Service) ListAccounts(ctx context.Context, req *accountsv1.ListAccountsRequest) (*accountsv1.ListAccountsResponse, error) {
	d, err := s.decision(ctx)
	if err != nil {
		return nil, err
	}
	filter := req.GetOwner()
	if owner, ownOnly := d.Principal(); ownOnly {
		switch filter {
		case "":
			filter = owner.String()
		case owner.String():
		default:
			return nil, s.denied(ctx, "own-scope principal lists the accounts of another owner",
				principalAttrs(d, slog.String("owner", filter))...)
		}
	}
	page, err := s.ledger.ListAccounts(ctx, ledger.ListAccountsRequest{
		Owner:     filter,
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &accountsv1.ListAccountsResponse{
		Accounts:      make([]*accountsv1.Account, 0, len(page.Accounts)),
		NextPageToken: page.NextPageToken,
	}
	for _, a := range page.Accounts {
		resp.Accounts = append(resp.Accounts, accountToProto(a))
	}
	return resp, nil
}

// Deposit credits an account, idempotently under the caller's key.
func (s *Service) Deposit(ctx context.Context, req *accountsv1.DepositRequest) (*accountsv1.DepositResponse, error) {
	txn, replayed, err := s.move(ctx, req.GetAccountId(), "account_id", req.GetAmount(), req.GetIdempotencyKey(),
		func(c caller, amount money.Amount) (ledger.Transaction, error) {
			return s.ledger.Deposit(ctx, ledger.DepositRequest{
				AccountID: req.GetAccountId(), Amount: amount, IdempotencyKey: req.GetIdempotencyKey(),
				Reference: req.GetReference(), Principal: c.principal, OnBehalfOf: c.onBehalfOf,
			})
		})
	if err != nil {
		return nil, err
	}
	return &accountsv1.DepositResponse{Transaction: txn, Replayed: replayed}, nil
}

// Withdraw debits an account, idempotently under the caller's key.
func (s *Service) Withdraw(ctx context.Context, req *accountsv1.WithdrawRequest) (*accountsv1.WithdrawResponse, error) {
	txn, replayed, err := s.move(ctx, req.GetAccountId(), "account_id", req.GetAmount(), req.GetIdempotencyKey(),
		func(c caller, amount money.Amount) (ledger.Transaction, error) {
			return s.ledger.Withdraw(ctx, ledger.WithdrawRequest{
				AccountID: req.GetAccountId(), Amount: amount, IdempotencyKey: req.GetIdempotencyKey(),
				Reference: req.GetReference(), Principal: c.principal, OnBehalfOf: c.onBehalfOf,
			})
		})
	if err != nil {
		return nil, err
	}
	return &accountsv1.WithdrawResponse{Transaction: txn, Replayed: replayed}, nil
}

// Transfer moves money between two accounts, idempotently under the caller's key. When
// the principal is own-scope (a customer named by the payments service, or an own-scope
// caller acting for itself) the source account must be the principal's; the destination
// may be anyone's. The ledger records the caller as Principal and the named end user as
// OnBehalfOf.
//
// A void (req.void) goes through the same authorization, ownership check and
// idempotency scope (the caller) as the transfer it voids, so only a caller that may
// make a transfer can void it, and only under its own keys; the ledger then settles
// the key without moving money.
func (s *Service) Transfer(ctx context.Context, req *accountsv1.TransferRequest) (*accountsv1.TransferResponse, error) {
	txn, replayed, err := s.move(ctx, req.GetFromAccountId(), "from_account_id", req.GetAmount(), req.GetIdempotencyKey(),
		func(c caller, amount money.Amount) (ledger.Transaction, error) {
			return s.ledger.Transfer(ctx, ledger.TransferRequest{
				FromAccountID: req.GetFromAccountId(), ToAccountID: req.GetToAccountId(), Amount: amount,
				IdempotencyKey: req.GetIdempotencyKey(), Reference: req.GetReference(),
				Principal: c.principal, OnBehalfOf: c.onBehalfOf, Void: req.GetVoid(),
			})
		})
	if err != nil {
		return nil, err
	}
	return &accountsv1.TransferResponse{Transaction: txn, Replayed: replayed}, nil
}

// caller is who a money-moving request is recorded for: the SPIFFE ID of the caller, and
// of the end user it names, if any.
type caller struct{ principal, onBehalfOf string }

// move is the part every money-moving method shares: the caller's decision, the
// ownership of the account the request debits or credits (field names it in the
// request), then do with the amount; it returns do's transaction as protobuf and whether it
// replayed an earlier request.
func (s *Service) move(ctx context.Context, accountID, field string, amountPB *typev1.Money, key string,
	do func(c caller, amount money.Amount) (ledger.Transaction, error)) (*accountsv1.Transaction, bool, error) {
	d, err := s.decision(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := s.checkOwner(ctx, d, accountID, field); err != nil {
		return nil, false, err
	}
	t, err := do(caller{principal: d.Identity.ID.String(), onBehalfOf: onBehalfOf(d)}, amountFromProto(amountPB))
	if err != nil {
		return nil, false, s.toStatus(ctx, err)
	}
	return transactionToProto(t, key), t.Replayed, nil
}

// WatchLedger streams the ledger's entries after req.after_sequence, then new ones as
// they commit, until the client cancels or the ledger closes (Unavailable). The stream
// spans every account, so an own-scope principal may not watch it. A slow client slows
// only its own stream: the ledger reads entries a page at a time at the stream's pace.
func (s *Service) WatchLedger(req *accountsv1.WatchLedgerRequest, stream grpc.ServerStreamingServer[accountsv1.WatchLedgerResponse]) error {
	ctx := stream.Context()
	d, err := s.decision(ctx)
	if err != nil {
		return err
	}
	if _, ownOnly := d.Principal(); ownOnly {
		return s.denied(ctx, "own-scope principal watches the whole ledger", principalAttrs(d)...)
	}
	// Headers go out now, not with the first entry, so that a client watching a quiet
	// ledger learns at once that the stream was accepted.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	err = s.ledger.Watch(ctx, req.GetAfterSequence(), func(e ledger.Entry) error {
		// The caller's chain is checked again before every entry (a map lookup and a
		// clock comparison per certificate): a watcher revoked while it watches is
		// sent nothing read after the revocation took effect, even before the server
		// closes its connection.
		if err := grpcserver.CheckCaller(ctx); err != nil {
			return err
		}
		return stream.Send(&accountsv1.WatchLedgerResponse{Entry: entryToProto(e)})
	})
	return s.toStatus(ctx, err)
}

// ListTransactions pages through every transaction in commit order, with its entries
// and idempotency key: the ledger side of a reconciliation. It lists the whole ledger,
// so a role with scope own (a policy that grants it to customers by mistake) is refused,
// as for WatchLedger.
func (s *Service) ListTransactions(ctx context.Context, req *accountsv1.ListTransactionsRequest) (*accountsv1.ListTransactionsResponse, error) {
	d, err := s.decision(ctx)
	if err != nil {
		return nil, err
	}
	if _, ownOnly := d.Principal(); ownOnly {
		return nil, s.denied(ctx, "own-scope principal lists the whole ledger", principalAttrs(d)...)
	}
	page, err := s.ledger.ListTransactions(ctx, ledger.ListTransactionsRequest{
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &accountsv1.ListTransactionsResponse{
		Transactions:  make([]*accountsv1.Transaction, 0, len(page.Transactions)),
		NextPageToken: page.NextPageToken,
	}
	for _, t := range page.Transactions {
		resp.Transactions = append(resp.Transactions, transactionToProto(t.Transaction, t.IdempotencyKey))
	}
	return resp, nil
}

// decision returns the authorization Decision the interceptor put in ctx. Without one
// the interceptor is missing from the server, and the call fails closed.
func (s *Service) decision(ctx context.Context) (authz.Decision, error) {
	d, ok := authz.FromContext(ctx)
	if !ok || !d.Allowed {
		method, _ := grpc.Method(ctx)
		s.logger.ErrorContext(ctx, "accounts: no authorization decision in context; is the authz interceptor installed?",
			slog.String("method", method))
		return authz.Decision{}, status.Error(codes.Unauthenticated, "no usable client identity")
	}
	return d, nil
}

// ownedAccount returns the account with id, refusing an own-scope principal an account
// it does not own, or an unknown one, with PermissionDenied. field names id in the
// request, for the InvalidArgument of a malformed id.
func (s *Service) ownedAccount(ctx context.Context, d authz.Decision, id, field string) (ledger.Account, error) {
	a, err := s.ledger.GetAccount(ctx, id)
	owner, ownOnly := d.Principal()
	switch {
	case ownOnly && errors.Is(err, ledger.ErrAccountNotFound):
		return ledger.Account{}, s.denied(ctx, "own-scope principal names an unknown account",
			principalAttrs(d, slog.String("account", id))...)
	case err != nil:
		return ledger.Account{}, s.toStatus(ctx, renameField(err, "id", field))
	case ownOnly:
		if err := a.CheckOwner(owner.String()); err != nil {
			return ledger.Account{}, s.denied(ctx, "own-scope principal names an account it does not own",
				principalAttrs(d, slog.String("account", id), slog.String("owner", a.Owner))...)
		}
	}
	return a, nil
}

// checkOwner refuses an own-scope principal an account it does not own (see
// ownedAccount); for other principals it reads nothing.
func (s *Service) checkOwner(ctx context.Context, d authz.Decision, id, field string) error {
	if _, ownOnly := d.Principal(); !ownOnly {
		return nil
	}
	_, err := s.ownedAccount(ctx, d, id, field)
	return err
}

// renameField returns err naming field instead of from: ledger.GetAccount names its
// argument "id", while the request field may be "from_account_id".
func renameField(err error, from, to string) error {
	var le *ledger.Error
	if from == to || !errors.As(err, &le) || le.Field != from {
		return err
	}
	renamed := *le
	renamed.Field = to
	return &renamed
}

// onBehalfOf returns the SPIFFE ID of the end user the caller named, or "".
func onBehalfOf(d authz.Decision) string {
	if d.OnBehalfOf == nil {
		return ""
	}
	return d.OnBehalfOf.ID.String()
}

// principalAttrs are the log attributes of who asked.
func principalAttrs(d authz.Decision, extra ...slog.Attr) []slog.Attr {
	attrs := []slog.Attr{slog.String("spiffe_id", d.Identity.ID.String()), slog.String("serial", d.Identity.SerialHex)}
	if d.OnBehalfOf != nil {
		attrs = append(attrs, slog.String("on_behalf_of", d.OnBehalfOf.ID.String()))
	}
	return append(attrs, extra...)
}
