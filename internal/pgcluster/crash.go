package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pgCtlStart starts the server of the data directory with the options of Start.
func (c *Cluster) pgCtlStart(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.Data, "-l", c.logFile, "-o", strings.Join(c.serverOpts, " ")); err != nil {
		log, _ := os.ReadFile(c.logFile)
		return fmt.Errorf("pg_ctl start: %w: %s %s", err, lastLines(out), lastLines(log))
	}
	return nil
}

// PostmasterPID returns the pid of this cluster's running postmaster: the one
// its postmaster.pid names, if that process is a postgres server of this data
// directory (its command line names it). Another process that happens to have
// the pid of a stale file is never taken for it.
func (c *Cluster) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.Data, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("the cluster is not running: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("postmaster.pid of %s names no process", c.Data)
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return 0, fmt.Errorf("postmaster %d of %s is not running: %w", pid, c.Data, err)
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) == 0 || filepath.Base(string(args[0])) != "postgres" || !bytes.Contains(cmdline, []byte(c.Data)) {
		return 0, fmt.Errorf("process %d is not the postmaster of %s", pid, c.Data)
	}
	return pid, nil
}

// Kill kills this cluster's postmaster with SIGKILL, as a crash would (a fault
// test's), and waits until it and every server process it had started are gone,
// so that Restart finds the shared memory free. Only the process PostmasterPID
// names is signalled: its children (each in a session of its own) end by
// themselves when they see it die. On Linux only (it reads /proc).
func (c *Cluster) Kill(ctx context.Context) error {
	pid, err := c.PostmasterPID()
	if err != nil {
		return err
	}
	procs := []int{pid}
	if err := children(pid, func(st procStat) { procs = append(procs, st.pid) }); err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill postmaster %d: %w", pid, err)
	}
	// The postmaster is not our child (pg_ctl started it), so it is reaped by
	// init: wait for /proc to forget it and its children, which hold the shared
	// memory until they notice.
	for {
		alive := 0
		for _, p := range procs {
			if st, ok := readStat(p); ok && st.state != "Z" {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d processes of the killed postmaster %d still run: %w", alive, pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// procStat is what this package reads of /proc/PID/stat.
type procStat struct {
	pid, ppid      int
	state          string
	utime, stime   int64 // CPU in clock ticks
	cutime, cstime int64 // of its waited-for children
}

// children calls fn for every live child of process ppid (zombies aside), on
// Linux (it reads /proc).
func children(ppid int, fn func(procStat)) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && st.state != "Z" && st.ppid == ppid {
			fn(st)
		}
	}
	return nil
}

// readStat reads /proc/PID/stat; false if the process is gone or the file is
// not as expected.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	// pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17): comm
	// may hold spaces, so count the fields after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, false
	}
	num := func(j int) int64 { n, _ := strconv.ParseInt(f[j], 10, 64); return n }
	return procStat{pid: pid, state: f[0], ppid: int(num(1)),
		utime: num(11), stime: num(12), cutime: num(13), cstime: num(14)}, true
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// ProcessCPU returns the user+system CPU time process pid has used (its own,
// not its children's), from /proc; 0 if it is gone.
func ProcessCPU(pid int) time.Duration {
	st, ok := readStat(pid)
	if !ok {
		return 0
	}
	return time.Duration(st.utime+st.stime) * clockTick
}

// CPU returns the user+system CPU time the running cluster has used: every
// server process (postmaster, backends, checkpointer, WAL writer...) plus the
// backends that have exited, which the postmaster has reaped. For benchmarks:
// what the database costs per request.
func (c *Cluster) CPU() (time.Duration, error) {
	pid, err := c.PostmasterPID()
	if err != nil {
		return 0, err
	}
	st, ok := readStat(pid)
	if !ok {
		return 0, fmt.Errorf("postmaster %d is gone", pid)
	}
	ticks := st.utime + st.stime + st.cutime + st.cstime
	err = children(pid, func(st procStat) { ticks += st.utime + st.stime })
	return time.Duration(ticks) * clockTick, err
}

// Restart starts the server of a killed (or stopped) cluster again, on the same
// port and with the same settings; PostgreSQL replays its WAL first. Kill waits
// for the old processes, but a start can still race the kernel's release of the
// shared memory, so a start that fails is retried until ctx ends.
func (c *Cluster) Restart(ctx context.Context) error {
	for {
		err := c.pgCtlStart(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
