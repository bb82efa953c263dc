//go:build crashtest

package main

import (
	"log/slog"
	"os"
	"syscall"

	"mtlsbank/internal/payments"
)

// crashHooks returns the hook BANK_TEST_CRASH names: the process SIGKILLs itself at
// that point, as a power cut would stop it, so that tests can prove a restart finishes
// the payment exactly once.
func crashHooks(getenv func(string) string, logger *slog.Logger) payments.Hooks {
	kill := func(where string) func(payments.Payment) {
		return func(p payments.Payment) {
			logger.Warn("BANK_TEST_CRASH: killing the process", "at", where, "payment", p.ID)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // SIGKILL cannot be caught; never go on
		}
	}
	switch at := getenv("BANK_TEST_CRASH"); at {
	case "after-record":
		return payments.Hooks{AfterRecord: kill(at)}
	case "after-transfer":
		return payments.Hooks{AfterTransfer: kill(at)}
	case "":
		return payments.Hooks{}
	default:
		logger.Error("BANK_TEST_CRASH: unknown crash point, ignored", "at", at)
		return payments.Hooks{}
	}
}
