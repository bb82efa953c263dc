package tlsconfig

import (
	"crypto/x509"
	"runtime"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/pki/pkitest"
)

func cacheLen(c *verifyCache) int {
	n := 0
	c.m.Range(func(any, any) bool { n++; return true })
	return n
}

// TestVerifyCache: a verdict is reused while the trust generation and the chain are the
// same, recomputed when either changes, and dropped once its leaf is unreachable.
func TestVerifyCache(t *testing.T) {
	p := pkitest.New(t)
	src, err := NewSource(spiffeid.RequireTrustDomainFromString("bank.local"), p.Server(t, "spiffe://bank.local/service/accounts").TLSCertificate(), p.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	alice := p.Client(t, "spiffe://bank.local/customer/alice")
	leaf, err := x509.ParseCertificate(alice.Cert.Raw) // a leaf only this test holds
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{leaf, p.Intermediate.Cert, p.Root.Cert}
	verdictNow := func() *verdict { return src.cache.slot(leaf).Load() }

	if err := src.CheckChain(chain); err != nil {
		t.Fatal(err)
	}
	first := verdictNow()
	if err := src.CheckChain(chain); err != nil || verdictNow() != first {
		t.Fatalf("second call: %v, verdict reused %v; want the cached verdict", err, verdictNow() == first)
	}
	if err := src.CheckChain([]*x509.Certificate{leaf, p.Intermediate.Cert}); err != nil || verdictNow() == first {
		t.Fatalf("other chain, same leaf: %v, recomputed %v", err, verdictNow() != first)
	}
	second := verdictNow()
	if err := src.SetIntermediates([]*x509.Certificate{p.Intermediate.Cert}); err != nil {
		t.Fatal(err)
	}
	if err := src.CheckChain([]*x509.Certificate{leaf, p.Intermediate.Cert}); err != nil || verdictNow() == second || verdictNow().gen != src.Generation() {
		t.Fatalf("after a trust change: %v, recomputed %v", err, verdictNow() != second)
	}

	before := cacheLen(&src.cache)
	leaf, chain = nil, nil
	deadline := time.Now().Add(10 * time.Second)
	for cacheLen(&src.cache) >= before {
		if time.Now().After(deadline) {
			t.Fatalf("cache still holds %d entries after the leaf became unreachable", cacheLen(&src.cache))
		}
		runtime.GC()
		runtime.Gosched()
	}
}
