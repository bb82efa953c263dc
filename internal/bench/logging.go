package bench

import (
	"context"
	"errors"
	"io"
	"log/slog"
)

// serviceLogger returns the services' logger: text records from level (Info in
// production: an audit record per RPC), formatted into io.Discard so that their cost is
// paid but nothing is written; records at Warn and above also go to problems, so that a
// failing call of the load can be explained.
func serviceLogger(problems io.Writer, level slog.Level) *slog.Logger {
	return slog.New(&teeHandler{
		all:      slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}),
		problems: slog.NewTextHandler(problems, &slog.HandlerOptions{Level: slog.LevelWarn}),
	})
}

// teeHandler sends every record to all and those problems enables to problems.
type teeHandler struct {
	all, problems slog.Handler
}

func (t *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.all.Enabled(ctx, l) || t.problems.Enabled(ctx, l)
}

func (t *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	if t.all.Enabled(ctx, r.Level) {
		errs = append(errs, t.all.Handle(ctx, r))
	}
	if t.problems.Enabled(ctx, r.Level) {
		errs = append(errs, t.problems.Handle(ctx, r.Clone()))
	}
	return errors.Join(errs...)
}

func (t *teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &teeHandler{all: t.all.WithAttrs(attrs), problems: t.problems.WithAttrs(attrs)}
}

func (t *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{all: t.all.WithGroup(name), problems: t.problems.WithGroup(name)}
}
