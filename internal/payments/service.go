package payments

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/authz"
	"mtlsbank/internal/money"
	"mtlsbank/internal/refusal"
)

// Page sizes of ListPayments.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// Service implements paymentsv1.PaymentsServiceServer. It expects every call to
// carry the authz.Decision of the authorization interceptor.
type Service struct {
	paymentsv1.UnimplementedPaymentsServiceServer

	orders   *Orders
	accounts accountsv1.AccountsServiceClient
	o        options
	locks    keyLocks
	// lease is this process's lease on the payments it carries out: a random
	// owner name, and twice the call timeout, long enough for a transfer and the
	// write of its outcome.
	lease Lease
	// nextExpiry is when the earliest lease of another process that the last
	// recovery pass had to skip expires (Unix nanoseconds; 0 for none).
	nextExpiry atomic.Int64
}

// NewService returns a service recording payments in store and carrying them out
// through accounts, a client of the accounts service authenticated as the payments
// service. Several services (processes) may share one store's database.
func NewService(store Store, accounts accountsv1.AccountsServiceClient, opts ...Option) *Service {
	o := newOptions(opts)
	return &Service{
		orders:   NewOrders(store, o.clock),
		accounts: accounts,
		o:        o,
		lease:    Lease{Owner: newLeaseOwner(), Duration: 2 * o.callTimeout},
	}
}

// CreatePayment records the order as PENDING, then asks the accounts service to
// move the money on behalf of the caller; see the proto for the status codes.
func (s *Service) CreatePayment(ctx context.Context, req *paymentsv1.CreatePaymentRequest) (*paymentsv1.CreatePaymentResponse, error) {
	d, err := decision(ctx)
	if err != nil {
		return nil, err
	}
	order, err := orderOf(req)
	if err != nil {
		return nil, err
	}
	principal, ownOnly := d.Principal()
	var daily RollingLimit
	if ownOnly {
		if daily, err = s.checkLimit(order); err != nil {
			return nil, err
		}
	}
	id := newPaymentID()
	serial, issuer, cas := creatorOf(d)
	p := Payment{
		ID:             id,
		CreatedBy:      principal.String(),
		IdempotencyKey: req.GetIdempotencyKey(),
		Fingerprint:    order.Fingerprint(),
		FromAccountID:  order.FromAccountID,
		ToAccountID:    order.ToAccountID,
		Currency:       order.Currency,
		MinorUnits:     order.MinorUnits,
		Memo:           order.Memo,
		TransferKey:    transferKey(id),
		CreatorSerial:  serial,
		CreatorIssuer:  issuer,
		CreatorCAs:     cas,
	}
	// This process carries the new payment out at once: it leases it, so that no
	// other process's recovery calls accounts for it meanwhile.
	create := CreateOptions{Lease: s.lease}
	if ownOnly {
		create.Limit = &daily
	}
	p, created, err := s.orders.Create(ctx, p, create)
	if err != nil {
		return nil, s.internal(ctx, "record payment", err)
	}
	if !created && p.Fingerprint != order.Fingerprint() {
		return nil, refusal.WithErrorInfo(status.Newf(codes.FailedPrecondition,
			"idempotency key %q was already used for a different payment (%s)", p.IdempotencyKey, p.ID),
			refusal.IdempotencyKeyReused, map[string]string{"payment": p.ID})
	}
	if created && p.Status == StatusPending {
		s.o.logger.InfoContext(ctx, "payment recorded", "payment", p.ID, "created_by", p.CreatedBy,
			"from", p.FromAccountID, "to", p.ToAccountID, "amount", money.Format(p.MinorUnits, p.Currency))
		if h := s.o.hooks.AfterRecord; h != nil {
			h(p)
		}
	}
	if p.Status == StatusPending {
		p = s.driveNow(ctx, p, created)
	}
	switch p.Status {
	case StatusCompleted:
		return &paymentsv1.CreatePaymentResponse{Payment: toProto(p), Replayed: !created}, nil
	case StatusFailed:
		if created && p.FailureCode == CodeLimitExceeded {
			s.o.logger.InfoContext(ctx, "payment refused by the customer daily limit", "payment", p.ID,
				"created_by", p.CreatedBy, "amount", money.Format(p.MinorUnits, p.Currency),
				"remaining", money.Format(p.LimitRemaining, p.Currency))
		}
		return nil, failedStatus(p)
	default:
		return nil, withPayment(status.New(codes.Unavailable, fmt.Sprintf(
			"accounts service unreachable; payment %s is pending and will be completed; retry with the same idempotency key",
			p.ID)), p)
	}
}

// GetPayment returns one payment. A caller limited to its own payments is told
// PERMISSION_DENIED for any other, whether or not it exists.
func (s *Service) GetPayment(ctx context.Context, req *paymentsv1.GetPaymentRequest) (*paymentsv1.GetPaymentResponse, error) {
	d, err := decision(ctx)
	if err != nil {
		return nil, err
	}
	principal, ownOnly := d.Principal()
	p, err := s.orders.Get(ctx, req.GetId())
	switch {
	case errors.Is(err, ErrNotFound) && ownOnly:
		return nil, status.Error(codes.PermissionDenied, "permission denied")
	case errors.Is(err, ErrNotFound):
		return nil, refusal.WithErrorInfo(status.Newf(codes.NotFound, "payment %q not found", req.GetId()), refusal.PaymentNotFound, nil)
	case err != nil:
		return nil, s.internal(ctx, "get payment", err)
	case ownOnly && p.CreatedBy != principal.String():
		return nil, status.Error(codes.PermissionDenied, "permission denied")
	}
	return &paymentsv1.GetPaymentResponse{Payment: toProto(p)}, nil
}

// ListPayments pages through payments in creation order; a caller limited to its
// own payments sees only those it created.
func (s *Service) ListPayments(ctx context.Context, req *paymentsv1.ListPaymentsRequest) (*paymentsv1.ListPaymentsResponse, error) {
	d, err := decision(ctx)
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize()) // not negative: the request's rules (bank.page_size)
	switch {
	case size <= 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	after, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, refusal.WithErrorInfo(status.New(codes.InvalidArgument, "page_token is malformed"), refusal.InvalidPageToken, map[string]string{"field": "page_token"})
	}
	q := Query{AfterSeq: after, Limit: size + 1}
	if principal, ownOnly := d.Principal(); ownOnly {
		q.CreatedBy = principal.String()
	}
	ps, err := s.orders.List(ctx, q)
	if err != nil {
		return nil, s.internal(ctx, "list payments", err)
	}
	resp := &paymentsv1.ListPaymentsResponse{}
	if len(ps) > size {
		ps = ps[:size]
		resp.NextPageToken = encodePageToken(ps[size-1].Seq)
	}
	resp.Payments = make([]*paymentsv1.Payment, len(ps))
	for i, p := range ps {
		resp.Payments[i] = toProto(p)
	}
	return resp, nil
}

// decision returns the authorization decision the interceptor attached. Its
// absence is a wiring bug, refused rather than served unauthorized.
func decision(ctx context.Context) (authz.Decision, error) {
	d, ok := authz.FromContext(ctx)
	if !ok || !d.Allowed {
		return authz.Decision{}, status.Error(codes.PermissionDenied, "permission denied")
	}
	return d, nil
}

// checkLimit refuses an order over the customer per-payment limit of its
// currency, and returns the rolling daily limit the order must also fit.
func (s *Service) checkLimit(o Order) (RollingLimit, error) {
	limit, ok := s.o.limits.Max(o.Currency)
	daily, dailyOK := s.o.dailyLimits.Max(o.Currency)
	if !ok || !dailyOK {
		return RollingLimit{}, refusal.WithErrorInfo(status.Newf(codes.PermissionDenied, "customers may not order payments in %s", o.Currency),
			refusal.CurrencyNotAllowed, map[string]string{"currency": o.Currency})
	}
	if o.MinorUnits > limit {
		st := status.Newf(codes.PermissionDenied, "%s exceeds the per-payment limit of %s for customers",
			money.Format(o.MinorUnits, o.Currency), money.Format(limit, o.Currency))
		return RollingLimit{}, refusal.WithErrorInfo(st, ReasonPaymentLimit, map[string]string{
			"limit":    "per_payment",
			"currency": o.Currency,
			"max":      major(limit, o.Currency),
			"amount":   major(o.MinorUnits, o.Currency),
		})
	}
	return RollingLimit{MinorUnits: daily, Window: DailyWindow}, nil
}

// Error details of the limit refusals (google.rpc.ErrorInfo, DESIGN.md).
const (
	// ErrorDomain is the ErrorInfo domain of the bank.
	ErrorDomain = refusal.Domain
	// ReasonPaymentLimit: the order is above the per-payment limit (PERMISSION_DENIED).
	ReasonPaymentLimit = refusal.CustomerPaymentLimitExceeded
	// ReasonDailyLimit: the order does not fit in what remains of the customer's
	// rolling daily limit (RESOURCE_EXHAUSTED).
	ReasonDailyLimit = refusal.CustomerDailyLimitExceeded
)

// failedStatus is the error a caller gets for a FAILED payment, first time or
// replayed: the code the payment failed with and its reason, the payment, and for
// a refusal by the daily limit which limit and how much of it remained.
//
// The daily limit is RESOURCE_EXHAUSTED, a per-user quota in gRPC's words: unlike
// FAILED_PRECONDITION (what the ledger answers for an account that is short) it
// tells the client that the same order fits later, once the window has slid, under
// a new idempotency key (this one stays refused).
func failedStatus(p Payment) error {
	st := status.New(failureCode(p.FailureCode), fmt.Sprintf("payment %s failed: %s", p.ID, p.FailureReason))
	details := []protoadapt.MessageV1{toProto(p)}
	if p.FailureCode != CodeLimitExceeded && p.FailureErrorReason != "" {
		return refusal.WithErrorInfo(st, p.FailureErrorReason, map[string]string{"payment": p.ID}, details...)
	}
	if p.FailureCode == CodeLimitExceeded {
		details = append(details, &errdetails.ErrorInfo{
			Reason: ReasonDailyLimit,
			Domain: ErrorDomain,
			Metadata: map[string]string{
				"limit":     "daily",
				"window":    formatWindow(DailyWindow),
				"currency":  p.Currency,
				"max":       major(p.LimitMinorUnits, p.Currency),
				"remaining": major(p.LimitRemaining, p.Currency),
				"amount":    major(p.MinorUnits, p.Currency),
			},
		}, &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
			Subject:     p.CreatedBy,
			Description: p.FailureReason,
		}}})
	}
	return withDetails(st, details...)
}

// major writes minor units of currency in major units without the code ("25.00"),
// as ParseLimits reads them.
func major(minor int64, currency string) string {
	c, ok := money.Lookup(currency)
	if !ok {
		return strconv.FormatInt(minor, 10)
	}
	return c.FormatMinor(minor)
}

// withDetails attaches details to st; a detail that cannot be attached (it
// cannot happen with these messages) leaves the status as it is.
func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	if ds, err := st.WithDetails(details...); err == nil {
		return ds.Err()
	}
	return st.Err()
}

// creatorOf returns the serial, in lower-case hex, and the raw issuer of the
// certificate the caller authenticated with, kept with the order so that a later
// revocation of that certificate stops it. A decision without the certificate (a
// test's) gives empty values.
func creatorOf(d authz.Decision) (serial string, issuer []byte, cas []CertRef) {
	leaf := d.Identity.Leaf
	if leaf == nil || leaf.SerialNumber == nil {
		return "", nil, nil
	}
	// The verified chain runs leaf first, root last; the CAs between can be revoked
	// by their parent's CRL, a (self-signed) root cannot.
	for _, c := range d.Identity.Chain[min(1, len(d.Identity.Chain)):] {
		if c == nil || c.SerialNumber == nil || bytes.Equal(c.RawIssuer, c.RawSubject) {
			continue
		}
		cas = append(cas, CertRef{Serial: c.SerialNumber.Text(16), Issuer: bytes.Clone(c.RawIssuer)})
	}
	return leaf.SerialNumber.Text(16), bytes.Clone(leaf.RawIssuer), cas
}

// internal logs err and returns a generic Internal status: storage details are for
// the operator, not the caller.
func (s *Service) internal(ctx context.Context, what string, err error) error {
	s.o.logger.ErrorContext(ctx, what, "err", err)
	return status.Error(codes.Internal, "internal error")
}

// orderOf returns the order req describes. The request's shape (ids, amount, key, memo,
// no self-payment) has been checked against its rules before the handler ran (package
// validation); what is left is the currency, which must be one ISO 4217 lists as active.
func orderOf(req *paymentsv1.CreatePaymentRequest) (Order, error) {
	o := Order{
		FromAccountID: req.GetFromAccountId(),
		ToAccountID:   req.GetToAccountId(),
		Currency:      req.GetAmount().GetCurrencyCode(),
		MinorUnits:    req.GetAmount().GetMinorUnits(),
		Memo:          req.GetMemo(),
	}
	if _, ok := money.Lookup(o.Currency); !ok {
		const field = "amount.currency_code"
		msg := fmt.Sprintf("%s %q is not an active ISO 4217 currency", field, o.Currency)
		return Order{}, refusal.WithErrorInfo(status.New(codes.InvalidArgument, msg), refusal.UnknownCurrency,
			map[string]string{"field": field}, &errdetails.BadRequest{
				FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg, Reason: refusal.UnknownCurrency}},
			})
	}
	return o, nil
}

// withPayment attaches the payment to an error status, so that a client holding
// only the error still learns the payment's id and state.
func withPayment(st *status.Status, p Payment) error {
	return withDetails(st, toProto(p))
}

func toProto(p Payment) *paymentsv1.Payment {
	return &paymentsv1.Payment{
		Id:             p.ID,
		Status:         statusToProto(p.Status),
		FromAccountId:  p.FromAccountID,
		ToAccountId:    p.ToAccountID,
		Amount:         &typev1.Money{CurrencyCode: p.Currency, MinorUnits: p.MinorUnits},
		TransactionId:  p.TransactionID,
		Memo:           p.Memo,
		FailureReason:  p.FailureReason,
		CreatedBy:      p.CreatedBy,
		CreateTime:     timestamppb.New(p.CreateTime),
		UpdateTime:     timestamppb.New(p.UpdateTime),
		IdempotencyKey: p.IdempotencyKey,
	}
}

func statusToProto(s Status) paymentsv1.PaymentStatus {
	switch s {
	case StatusPending:
		return paymentsv1.PaymentStatus_PAYMENT_STATUS_PENDING
	case StatusCompleted:
		return paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED
	case StatusFailed:
		return paymentsv1.PaymentStatus_PAYMENT_STATUS_FAILED
	}
	return paymentsv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED
}
