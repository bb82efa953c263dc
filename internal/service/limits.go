package service

import (
	"fmt"
	"log/slog"
)

// FDReserve is how many file descriptors are kept out of the connection budget: the
// listeners, the database and its -wal/-shm, reloads of the CA, key, certificate and CRL
// files, the /metrics connections, the clients of other services, the runtime's own.
// A flood of connections can then never make a reload fail with "too many open files".
const FDReserve = 64

// connectionBudget raises the soft RLIMIT_NOFILE to the hard limit (Go does as much at
// start on Linux; this makes it explicit, and logs both), and returns the connection cap
// to use: maxConns, lowered if needed to the soft limit less FDReserve.
func connectionBudget(maxConns int, logger *slog.Logger) (int, error) {
	soft, hard, err := raiseNOFILE()
	if err != nil {
		return 0, fmt.Errorf("file descriptor limit: %w", err)
	}
	if soft == 0 { // no such limit on this platform
		logger.Info("file descriptor limit unknown; connection cap as configured", "max_connections", maxConns)
		return maxConns, nil
	}
	budget := int(min(soft, 1<<30)) - FDReserve
	if budget < 1 {
		return 0, fmt.Errorf("file descriptor limit %d leaves no room for connections beside the %d reserved; raise it (ulimit -n)", soft, FDReserve)
	}
	capped := min(maxConns, budget)
	attrs := []any{"soft", soft, "hard", hard, "reserve", FDReserve, "max_connections", capped}
	if capped < maxConns {
		logger.Warn("--max-connections lowered to fit the file descriptor limit", append(attrs, "configured", maxConns)...)
	} else {
		logger.Info("file descriptor limit", attrs...)
	}
	return capped, nil
}
