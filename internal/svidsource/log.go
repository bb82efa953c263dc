package svidsource

import (
	"fmt"
	"log/slog"
	"sync"
)

// apiLog is the logger go-spiffe's Workload API client reports to: its errors are the
// only word of a failed attempt (the X509Source retries by itself). Before the first SVID
// they are the waiting's log lines and the last one explains a timeout; after it each is
// also passed to the OnError hook.
type apiLog struct {
	logger   *slog.Logger
	endpoint string

	mu      sync.Mutex
	last    error
	isUp    bool
	onError func(error)
}

// started marks the first SVID received: errors from now on go to onError too.
func (l *apiLog) started(onError func(error)) {
	l.mu.Lock()
	l.isUp, l.onError = true, onError
	l.mu.Unlock()
}

func (l *apiLog) lastError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

func (l *apiLog) Debugf(format string, args ...any) { l.logger.Debug(fmt.Sprintf(format, args...)) }
func (l *apiLog) Infof(format string, args ...any)  { l.logger.Debug(fmt.Sprintf(format, args...)) }
func (l *apiLog) Warnf(format string, args ...any)  { l.logger.Warn(fmt.Sprintf(format, args...)) }

// Errorf records the error among args (go-spiffe passes the gRPC error itself) and logs.
func (l *apiLog) Errorf(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	for _, a := range args {
		if e, ok := a.(error); ok {
			err = e
			break
		}
	}
	l.mu.Lock()
	l.last = err
	up, onError := l.isUp, l.onError
	l.mu.Unlock()
	if !up {
		l.logger.Warn("no X.509-SVID from the SPIFFE Workload API yet; retrying", "endpoint", l.endpoint, "err", err.Error())
		return
	}
	l.logger.Warn("SPIFFE Workload API watch failed; the current X.509-SVID stays in use until it expires; retrying",
		"endpoint", l.endpoint, "err", err.Error())
	if onError != nil {
		onError(err)
	}
}
