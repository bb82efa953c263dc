//go:build !linux

package auditlog

import "time"

func threadCPU() (time.Duration, error) { return 0, errNoThreadClock }
