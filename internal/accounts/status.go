package accounts

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/refusal"
)

// Messages for refusals whose detail the client must not learn: the same text as the
// authorization interceptor's, so that an ownership refusal cannot be told apart from a
// policy refusal, and an internal failure reveals nothing of the server.
const (
	msgPermissionDenied = "permission denied"
	msgInternal         = "internal error"
)

// Error details of refusals other than authentication and authorization
// (google.rpc.ErrorInfo, DESIGN.md): stable reasons programs may act on. They are
// defined, with the mapping from the ledger's errors, in package refusal.
const (
	// ErrorDomain is the ErrorInfo domain of the bank.
	ErrorDomain = refusal.Domain
	// ReasonTransferVoided: the transfer's idempotency key was voided before any
	// transfer under it ran (FAILED_PRECONDITION); nothing moved and nothing will.
	ReasonTransferVoided = refusal.TransferVoided
)

// toStatus is the one place where an error of this service becomes a gRPC status. Ledger
// refusals keep their message, which names the field at fault and never another
// customer's data, and carry a google.rpc.ErrorInfo with the reason (refusal.LedgerReason);
// an invalid argument also carries a google.rpc.BadRequest detail with that field. An
// ownership refusal is the generic PermissionDenied, without a reason. An error the ledger
// does not document is logged with its detail and returned as a generic Internal.
func (s *Service) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already decided at this edge (or by grpc, for a stream Send)
	}
	var code codes.Code
	switch {
	case errors.Is(err, ledger.ErrInvalidArgument):
		return invalidArgument(err)
	case errors.Is(err, ledger.ErrTransferVoided), errors.Is(err, ledger.ErrInsufficientFunds),
		errors.Is(err, ledger.ErrIdempotencyMismatch), errors.Is(err, ledger.ErrSupplyLimit):
		code = codes.FailedPrecondition
	case errors.Is(err, ledger.ErrAccountNotFound), errors.Is(err, ledger.ErrTransactionNotFound):
		code = codes.NotFound
	case errors.Is(err, ledger.ErrNotOwner):
		return status.Error(codes.PermissionDenied, msgPermissionDenied)
	case errors.Is(err, ledger.ErrConcurrentRequest):
		code = codes.Aborted
	case errors.Is(err, ledger.ErrClosed):
		return withReason(status.New(codes.Unavailable, "the ledger is shutting down; retry with the same idempotency key"), err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		method, _ := grpc.Method(ctx)
		attrs := []slog.Attr{slog.String("method", method), slog.Any("err", err)}
		if d, ok := authz.FromContext(ctx); ok {
			attrs = append(attrs, principalAttrs(d)...)
		}
		s.logger.LogAttrs(ctx, slog.LevelError, "accounts: unexpected error", attrs...)
		return status.Error(codes.Internal, msgInternal)
	}
	return withReason(status.New(code, err.Error()), err)
}

// withReason returns st with the ErrorInfo of the ledger refusal err (and, when it
// names a field, the field as metadata), and any details after it.
func withReason(st *status.Status, err error, details ...protoadapt.MessageV1) error {
	reason, ok := refusal.LedgerReason(err)
	if !ok {
		return st.Err()
	}
	var md map[string]string
	var le *ledger.Error
	if errors.As(err, &le) && le.Field != "" {
		md = map[string]string{"field": le.Field}
	}
	return refusal.WithErrorInfo(st, reason, md, details...)
}

// invalidArgument returns InvalidArgument with the ledger's message, its reason and,
// when the error names a field, a BadRequest detail for programs.
func invalidArgument(err error) error {
	st := status.New(codes.InvalidArgument, err.Error())
	var le *ledger.Error
	if !errors.As(err, &le) || le.Field == "" {
		return withReason(st, err)
	}
	reason := le.Err.Error()
	if le.Detail != "" {
		reason += ": " + le.Detail
	}
	return withReason(st, err, &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: le.Field, Description: reason}},
	})
}

// denied returns the generic PermissionDenied and writes why to the log, which is where
// the detail of a refusal belongs.
func (s *Service) denied(ctx context.Context, reason string, attrs ...slog.Attr) error {
	method, _ := grpc.Method(ctx)
	attrs = append([]slog.Attr{
		slog.Bool("audit", true),
		slog.String("decision", "deny"),
		slog.String("code", codes.PermissionDenied.String()),
		slog.String("method", method),
		slog.String("rule", reason),
	}, attrs...)
	s.logger.LogAttrs(ctx, slog.LevelWarn, "accounts: ownership refused", attrs...)
	return status.Error(codes.PermissionDenied, msgPermissionDenied)
}
