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
// test's), and waits until it and every server process of it are gone, so that
// Restart finds the shared memory free. Only the process PostmasterPID names is
// signalled: its backends end by themselves when they see it die. On Linux only
// (it reads /proc).
func (c *Cluster) Kill(ctx context.Context) error {
	pid, err := c.PostmasterPID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill postmaster %d: %w", pid, err)
	}
	// The postmaster is not our child (pg_ctl started it), so it is reaped by
	// init: wait for /proc to forget it, then for its children, which hold the
	// shared memory until they notice.
	for {
		alive, err := c.serverProcesses(pid)
		if err != nil {
			return err
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

// serverProcesses counts the processes of postmaster pid's session, zombies
// aside: the postmaster calls setsid, and its children keep the session when
// they are reparented after its death.
func (c *Cluster) serverProcesses(pid int) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 4 || fields[0] == "Z" {
			continue
		}
		if session, _ := strconv.Atoi(fields[3]); p == pid || session == pid {
			n++
		}
	}
	return n, nil
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
