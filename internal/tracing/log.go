package tracing

import (
	"context"
	"encoding/hex"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// The attribute keys NewLogHandler adds to a record.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// IDs returns the trace id and span id of the span in ctx (lower-case hex, 32 and 16
// digits, as W3C traceparent and the tracing backends write them), and false when ctx
// has none: what a log or audit record of a call carries to find its trace.
func IDs(ctx context.Context) (traceID, spanID string, ok bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", "", false
	}
	// One allocation each; TraceID.String takes two (hex.EncodeToString).
	tid, sid := sc.TraceID(), sc.SpanID()
	var buf [32]byte
	hex.Encode(buf[:], tid[:])
	traceID = string(buf[:])
	hex.Encode(buf[:16], sid[:])
	return traceID, string(buf[:16]), true
}

// NewLogHandler wraps h so that every record logged with a context that holds a span
// (slog's *Context methods, Logger.Log, LogAttrs) carries trace_id and span_id (IDs).
// Records of a logger that went through WithGroup carry them inside the group.
func NewLogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*logHandler); ok {
		return h
	}
	return &logHandler{Handler: h}
}

type logHandler struct{ slog.Handler }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if traceID, spanID, ok := IDs(ctx); ok {
		r.AddAttrs(slog.String(TraceIDKey, traceID), slog.String(SpanIDKey, spanID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHandler{Handler: h.Handler.WithAttrs(attrs)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{Handler: h.Handler.WithGroup(name)}
}

// LogErrorsTo makes logger the destination of OpenTelemetry's internal errors (a failed
// export, a dropped batch), at Warn, instead of the standard log package. It sets the
// process-wide handler of go.opentelemetry.io/otel: call it from main only.
func LogErrorsTo(logger *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: OpenTelemetry error", "err", err)
	}))
}
