// Package auditlogtest helps tests of the audit trail: a syncer that holds the writer
// inside fsync, to show what waits for durability and what does not, and a fresh key.
package auditlogtest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"mtlsbank/internal/auditlog"
)

// SyncGate is a syncer (auditlog.WithSyncer) that, once armed, blocks the writer inside
// the fsync of the next batch until opened, and remembers how much of the file each
// fsync made durable.
type SyncGate struct {
	armed    atomic.Bool
	entered  chan struct{}
	release  chan struct{}
	once     sync.Once
	durable  atomic.Int64
	inFlight atomic.Int64
}

// NewSyncGate returns an unarmed gate, opened at the end of the test so that a failed
// test does not leave the writer stuck. Register Open again after opening the sink, so
// that it runs before the sink's Close.
func NewSyncGate(tb testing.TB) *SyncGate {
	g := &SyncGate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	tb.Cleanup(g.Open)
	return g
}

// Sync is the syncer: a real fsync, held back while the gate is armed.
func (g *SyncGate) Sync(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	g.inFlight.Store(info.Size())
	if g.armed.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.release
	}
	if err := f.Sync(); err != nil {
		return err
	}
	g.durable.Store(info.Size())
	return nil
}

// Arm makes the next fsync block until Open.
func (g *SyncGate) Arm() { g.armed.Store(true) }

// Entered is readable once the writer is blocked inside an fsync.
func (g *SyncGate) Entered() <-chan struct{} { return g.entered }

// Open lets the blocked fsync, and every later one, proceed.
func (g *SyncGate) Open() { g.once.Do(func() { close(g.release) }) }

// Durable is the size of the file when the last fsync that returned began: the
// prefix known durable.
func (g *SyncGate) Durable() int64 { return g.durable.Load() }

// InFlight is the size of the file when the fsync running (or last run) began.
func (g *SyncGate) InFlight() int64 { return g.inFlight.Load() }

// Prefix returns the first n bytes of the file at path.
func Prefix(tb testing.TB, path string, n int64) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data[:min(int64(len(data)), n)]
}

// NewKey returns a fresh Ed25519 signing key.
func NewKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// WriteKeyPair writes a fresh audit key pair into dir as NAME-audit.key (0600) and
// NAME-audit.pub, as certgen does, and returns their paths.
func WriteKeyPair(tb testing.TB, dir, name string) (keyPath, pubPath string) {
	tb.Helper()
	keyPath, pubPath = filepath.Join(dir, name+"-audit.key"), filepath.Join(dir, name+"-audit.pub")
	if err := auditlog.WriteKeyPair(keyPath, pubPath); err != nil {
		tb.Fatal(err)
	}
	return keyPath, pubPath
}
