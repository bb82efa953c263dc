package payments

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/refusal"
)

// ErrOutcomeUnknown means the accounts service did not say whether a transfer
// happened (it was unreachable, timed out, or failed in a way that is not a
// refusal); the payment stays PENDING and is retried with the same key.
var ErrOutcomeUnknown = errors.New("transfer outcome unknown")

// driveNow drives p for a caller that is waiting for the answer. The transfer
// runs on a context that the caller's cancellation does not reach: a caller that
// gives up must not leave behind a transfer whose outcome was never recorded.
//
// A payment the caller has just created, whose lock it took without waiting, is
// carried out as it is, without reading it again: Create gave this process its
// lease, so no other process's recovery drives it meanwhile, and the lock keeps
// this process's other drivers (a recovery pass, a duplicate request) away. Any
// other payment is claimed first (drive).
func (s *Service) driveNow(ctx context.Context, p Payment, created bool) Payment {
	unlock, waited, err := s.locks.lock(ctx, p.ID)
	if err != nil {
		return p // the caller gave up waiting for another driver; p is still PENDING for it
	}
	defer unlock()
	var out Payment
	if created && !waited {
		out, err = s.transfer(context.WithoutCancel(ctx), p)
	} else {
		out, err = s.drive(context.WithoutCancel(ctx), p.ID)
	}
	if err != nil {
		s.o.logger.WarnContext(ctx, "payment left pending", "payment", p.ID, "err", err)
		if out.ID == "" {
			return p
		}
	}
	return out
}

// drive carries out the payment with the id if it is still PENDING and no other
// process holds its lease, holding its lock: it takes the lease first. It returns
// the payment as stored afterwards, and an error when it stays PENDING (ErrLeased
// when another process is carrying it out).
func (s *Service) drive(ctx context.Context, id string) (Payment, error) {
	p, claimed, err := s.orders.Claim(ctx, id, s.lease)
	switch {
	case err != nil:
		return Payment{}, err
	case p.Status != StatusPending:
		return p, nil // another driver finished it while we waited for the lock
	case !claimed:
		return p, fmt.Errorf("payment %s: %w (%s) until %s", p.ID, ErrLeased, p.LeaseOwner, p.LeaseUntil.Format(time.RFC3339Nano))
	}
	return s.transfer(ctx, p)
}

// transfer carries out the PENDING payment p, whose lease this process holds, and
// records the outcome (carryOut). If p stays PENDING, it gives the lease up, so
// that any process may try again at once rather than when the lease expires.
func (s *Service) transfer(ctx context.Context, p Payment) (Payment, error) {
	out, err := s.carryOut(ctx, p)
	if err != nil && out.Status == StatusPending {
		if rerr := s.orders.Release(context.WithoutCancel(ctx), p.ID, s.lease.Owner); rerr != nil {
			s.o.logger.WarnContext(ctx, "payment lease not released; it expires by itself", "payment", p.ID, "err", rerr)
		}
	}
	return out, err
}

// carryOut calls Transfer for the PENDING payment p with its own key on behalf
// of its creator, holding its lock and lease, and records the outcome. It returns
// the payment as stored afterwards, and an error when it stays PENDING.
//
// A payment whose creator's certificate is revoked by now is not carried out:
// its key is voided instead (settleRevoked), so the revocation reaches orders
// still waiting, not only new connections.
func (s *Service) carryOut(ctx context.Context, p Payment) (Payment, error) {
	revoked := s.creatorRevoked(p)
	callCtx, cancel := context.WithTimeout(ctx, s.o.callTimeout)
	defer cancel()
	callCtx = metadata.AppendToOutgoingContext(callCtx, authz.OnBehalfOfKey, p.CreatedBy)
	resp, err := s.accounts.Transfer(callCtx, &accountsv1.TransferRequest{
		FromAccountId:  p.FromAccountID,
		ToAccountId:    p.ToAccountID,
		Amount:         &typev1.Money{CurrencyCode: p.Currency, MinorUnits: p.MinorUnits},
		IdempotencyKey: p.TransferKey,
		Reference:      transferReference(p.Memo),
		Void:           revoked,
	})
	if h := s.o.hooks.AfterTransfer; h != nil {
		h(p)
	}
	// A voided key answers an ordinary transfer too: another driver of p (another
	// payments process, whose CRL was fresher) voided it. Only a revocation voids.
	if revoked || (err != nil && voided(status.Convert(err))) {
		return s.settleRevoked(ctx, p, resp, err)
	}
	if err == nil {
		txn := resp.GetTransaction().GetId()
		if txn == "" {
			return p, fmt.Errorf("payment %s: accounts answered without a transaction id: %w", p.ID, ErrOutcomeUnknown)
		}
		done, err := s.orders.Complete(ctx, p, txn)
		if err != nil {
			return p, err
		}
		s.o.logger.InfoContext(ctx, "payment finished", "payment", done.ID, "status", done.Status, "transaction", done.TransactionID)
		return done, nil
	}
	st := status.Convert(err)
	name, definitive := definitiveCode(st.Code())
	if !definitive {
		return p, fmt.Errorf("payment %s: transfer: %w (%s: %s)", p.ID, ErrOutcomeUnknown, st.Code(), st.Message())
	}
	done, err := s.orders.FailWithErrorReason(ctx, p, name, errorReason(err), st.Message())
	if err != nil {
		return p, err
	}
	s.o.logger.InfoContext(ctx, "payment finished", "payment", done.ID, "status", done.Status,
		"code", done.FailureCode, "reason", done.FailureReason)
	return done, nil
}

// reasonTransferVoided is the ErrorInfo reason (domain ErrorDomain) of the accounts
// service's refusal of a voided transfer key (bank.accounts.v1.TransferRequest.void).
const reasonTransferVoided = "TRANSFER_VOIDED"

// errVoidUnanswered means the accounts service answered the void of a payment's
// key with a refusal that says nothing about the key (PERMISSION_DENIED from its
// policy, for one). The payment stays PENDING, and a recovery pass moves on to the
// next payment rather than stopping: the accounts service is up.
var errVoidUnanswered = errors.New("the void of the transfer key was not answered")

// settleRevoked records the answer to the void of p's transfer key, sent because
// the certificate p was ordered with is revoked. Only the ledger knows whether an
// earlier attempt of p moved the money (payments may have crashed or timed out
// after sending it), and such an attempt may still be on its way; the void decides
// the key for good, in the ledger's one order of requests, and p is recorded as the
// ledger has it:
//   - voided: nothing moved and nothing will: FAILED, ReasonCreatorRevoked;
//   - a transaction: an earlier attempt moved the money before the revocation
//     reached payments: COMPLETED with it, so that payment and ledger agree;
//   - the key's original refusal (or the refusal the original would get, for a
//     malformed one): FAILED with it, as a retry would have recorded;
//   - anything else: the outcome is unknown and p stays PENDING. A payment is
//     never failed without the ledger's answer about its key.
func (s *Service) settleRevoked(ctx context.Context, p Payment, resp *accountsv1.TransferResponse, err error) (Payment, error) {
	logger := s.o.logger.With("payment", p.ID, "created_by", p.CreatedBy, "serial", printedSerial(p.CreatorSerial), "transfer_key", p.TransferKey)
	if err == nil {
		txn := resp.GetTransaction().GetId()
		if txn == "" {
			return p, fmt.Errorf("payment %s: accounts answered the void without a transaction id: %w", p.ID, ErrOutcomeUnknown)
		}
		if !resp.GetReplayed() {
			// Only a server that ignores the void field carries one out as a transfer.
			logger.ErrorContext(ctx, "accounts carried out the void of a revoked creator's payment as a transfer: "+
				"it predates TransferRequest.void; upgrade accounts before payments", "transaction", txn)
		}
		done, err := s.orders.Complete(ctx, p, txn)
		if err != nil {
			return p, err
		}
		logger.WarnContext(ctx, "payment completed although its creator's certificate is revoked: "+
			"its money had moved before its creator's certificate was revoked", "status", done.Status, "transaction", done.TransactionID)
		return done, nil
	}
	st := status.Convert(err)
	if voided(st) {
		done, err := s.orders.Fail(ctx, p, "PERMISSION_DENIED", ReasonCreatorRevoked)
		if err != nil {
			return p, err
		}
		logger.WarnContext(ctx, "payment failed: its creator's certificate is revoked and its transfer key is voided",
			"status", done.Status, "reason", done.FailureReason)
		return done, nil
	}
	switch st.Code() {
	case codes.FailedPrecondition, codes.NotFound, codes.InvalidArgument:
		name, _ := definitiveCode(st.Code())
		done, err := s.orders.FailWithErrorReason(ctx, p, name, errorReason(err), st.Message())
		if err != nil {
			return p, err
		}
		logger.InfoContext(ctx, "payment finished: the void of its revoked creator's order returned the transfer's refusal",
			"status", done.Status, "code", done.FailureCode, "reason", done.FailureReason)
		return done, nil
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted, codes.Aborted:
		// Transient: accounts is down, slow, rate-limiting, or raced another driver.
		return p, fmt.Errorf("payment %s: void of its transfer: %w (%s: %s)", p.ID, ErrOutcomeUnknown, st.Code(), st.Message())
	}
	logger.ErrorContext(ctx, "payment of a revoked creator left pending: accounts refused to void its transfer key",
		"code", st.Code().String(), "message", st.Message())
	return p, fmt.Errorf("payment %s: %w: %w (%s: %s)", p.ID, errVoidUnanswered, ErrOutcomeUnknown, st.Code(), st.Message())
}

// errorReason returns the ErrorInfo reason of the accounts service's refusal err,
// or "" if it carries none.
func errorReason(err error) string {
	if ei, ok := refusal.Info(err); ok {
		return ei.GetReason()
	}
	return ""
}

// voided reports whether st is the accounts service's refusal of a voided key.
func voided(st *status.Status) bool {
	if st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == reasonTransferVoided && ei.GetDomain() == ErrorDomain {
			return true
		}
	}
	return false
}

// transferReference is the memo as the ledger's reference: cut, at a character
// boundary, to the ledger's byte limit (a memo is limited in characters).
func transferReference(memo string) string {
	if len(memo) <= ledger.MaxReferenceLen {
		return memo
	}
	cut := ledger.MaxReferenceLen
	for cut > 0 && !utf8.RuneStart(memo[cut]) {
		cut--
	}
	return memo[:cut]
}

// definitiveCode reports whether the accounts service refused a transfer for good
// (it is idempotent on the key, so the same request would be refused again) and
// returns the code's name for the store. Every other code, Unavailable and
// DeadlineExceeded above all, leaves the outcome unknown.
func definitiveCode(c codes.Code) (string, bool) {
	switch c {
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT", true
	case codes.NotFound:
		return "NOT_FOUND", true
	case codes.FailedPrecondition:
		return "FAILED_PRECONDITION", true
	case codes.PermissionDenied:
		return "PERMISSION_DENIED", true
	}
	return "", false // ResourceExhausted (CodeLimitExceeded) is payments' own, never the ledger's
}

// failureCode reads back a name written by definitiveCode.
func failureCode(name string) codes.Code {
	switch name {
	case "INVALID_ARGUMENT":
		return codes.InvalidArgument
	case "NOT_FOUND":
		return codes.NotFound
	case "PERMISSION_DENIED":
		return codes.PermissionDenied
	case CodeLimitExceeded:
		return codes.ResourceExhausted
	}
	return codes.FailedPrecondition
}

// keyLocks serialises the drivers of one payment within the process, so that the
// request path and the recovery worker never call Transfer for it at once. The
// zero value is ready to use.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed when the holder unlocks
}

// lock waits until key is free or ctx is done, then holds it until the returned
// function is called. waited reports that another holder had it first.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), waited bool, err error) {
	for {
		unlock, wait := k.try(key)
		if unlock != nil {
			return unlock, waited, nil
		}
		waited = true
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
}

// try holds key if it is free; otherwise it returns a channel closed when it is
// released.
func (k *keyLocks) try(key string) (unlock func(), wait <-chan struct{}) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ch, busy := k.held[key]; busy {
		return nil, ch
	}
	if k.held == nil {
		k.held = make(map[string]chan struct{})
	}
	ch := make(chan struct{})
	k.held[key] = ch
	return func() {
		k.mu.Lock()
		delete(k.held, key)
		k.mu.Unlock()
		close(ch)
	}, nil
}
