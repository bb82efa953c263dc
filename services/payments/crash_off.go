//go:build !crashtest

package main

import (
	"log/slog"

	"mtlsbank/internal/payments"
)

// crashHooks returns no hooks: only a binary built with -tags crashtest can crash on
// purpose.
func crashHooks(func(string) string, *slog.Logger) payments.Hooks {
	return payments.Hooks{}
}
