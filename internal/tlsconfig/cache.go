package tlsconfig

import (
	"crypto/x509"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// verifyCache remembers, per peer leaf, the outcome of CheckChain's verification. It is
// keyed by a weak pointer to the leaf: a connection holds its leaf for its lifetime, and
// once the last connection presenting it is gone the entry goes too (runtime.AddCleanup),
// so the cache needs neither a size bound nor a hook on connection close.
type verifyCache struct {
	m sync.Map // weak.Pointer[x509.Certificate] -> *cacheSlot
}

// cacheSlot holds the latest verdict for one leaf.
type cacheSlot struct{ atomic.Pointer[verdict] }

// verdict is the outcome of verifying a chain under trust generation gen, good until
// until. It must not reference the leaf (neither directly nor through err), or the leaf
// would stay reachable from the cache and never be collected.
type verdict struct {
	gen   uint64
	rest  []*x509.Certificate // the chain after its leaf
	err   error
	until time.Time
}

// matches reports whether chain (whose leaf is the slot's) is the very chain the verdict
// is about (a leaf shared by two connections may arrive with other intermediates).
func (v *verdict) matches(chain []*x509.Certificate) bool {
	if len(chain)-1 != len(v.rest) {
		return false
	}
	for i, c := range chain[1:] {
		if c != v.rest[i] {
			return false
		}
	}
	return true
}

func (c *verifyCache) slot(leaf *x509.Certificate) *cacheSlot {
	k := weak.Make(leaf)
	if s, ok := c.m.Load(k); ok {
		return s.(*cacheSlot)
	}
	s, loaded := c.m.LoadOrStore(k, new(cacheSlot))
	if !loaded {
		runtime.AddCleanup(leaf, func(k weak.Pointer[x509.Certificate]) { c.m.Delete(k) }, k)
	}
	return s.(*cacheSlot)
}
