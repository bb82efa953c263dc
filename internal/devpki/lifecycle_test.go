package devpki_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"mtlsbank/internal/devpki"
	"mtlsbank/internal/pki"
)

// crlNumbers returns the CRL number of each CA's CRL in crl.pem, by CA name.
func crlNumbers(tb testing.TB, dir string, names ...string) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for _, name := range names {
		out[name] = readCRLOf(tb, dir, name).Number.Int64()
	}
	return out
}

// TestRefreshCRLs: `certgen crl` re-signs every CRL once less than half its validity
// is left (or when forced), never lowers a number, and rebuilds a lost or damaged
// crl.pem from the state without losing a revocation.
func TestRefreshCRLs(t *testing.T) {
	start := time.Now()
	clock := start
	opts := []devpki.Option{devpki.WithClock(func() time.Time { return clock }), devpki.WithCRLValidity(10 * time.Hour)}
	p, dir := newPKI(t, opts...)
	if _, err := p.Revoke("bob"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wantListed := []string{serialOf(t, dir, "bob"), serialOf(t, dir, "revoked")}
	slices.Sort(wantListed)
	last := crlNumbers(t, dir, "root", "intermediate")

	tests := []struct {
		name      string
		setup     func(t *testing.T)
		force     bool
		wantWrite bool
		only      string // if set, the one CA whose CRL is re-signed; the other's is kept
	}{
		{name: "fresh CRLs are kept", setup: func(*testing.T) { clock = start.Add(4 * time.Hour) }},
		{name: "more than half left", setup: func(*testing.T) { clock = start.Add(4*time.Hour + 59*time.Minute) }},
		{name: "less than half left", setup: func(*testing.T) { clock = start.Add(5*time.Hour + 2*time.Minute) }, wantWrite: true},
		{name: "just re-signed", wantWrite: false},
		{name: "forced", force: true, wantWrite: true},
		{name: "past nextUpdate", setup: func(*testing.T) { clock = clock.Add(11 * time.Hour) }, wantWrite: true},
		{name: "deleted crl.pem", setup: func(t *testing.T) { mustRemove(t, filepath.Join(dir, devpki.CRLFile)) }, wantWrite: true},
		{name: "garbage crl.pem", setup: func(t *testing.T) { mustWrite(t, filepath.Join(dir, devpki.CRLFile), "garbage") }, wantWrite: true},
		{
			name: "a CRL missing from crl.pem",
			setup: func(t *testing.T) {
				crl := readCRLOf(t, dir, "intermediate")
				mustWrite(t, filepath.Join(dir, devpki.CRLFile), string(pki.EncodeCRLPEM(crl.Raw)))
			},
			wantWrite: true,
			only:      "root",
		},
		{name: "repaired", wantWrite: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			before := snapshot(t, dir)
			results, err := mustNew(t, dir, append(opts, devpki.WithForce(tt.force))...).RefreshCRLs()
			if err != nil {
				t.Fatalf("RefreshCRLs: %v", err)
			}
			got := written(t, dir, results)
			var want []string
			if tt.wantWrite {
				want = []string{"ca/state.json", devpki.CRLFile}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("wrote %v, want %v", got, want)
			}
			if diff := changed(before, snapshot(t, dir)); !slices.Equal(diff, want) {
				t.Errorf("changed %v, want %v", diff, want)
			}
			numbers := crlNumbers(t, dir, "root", "intermediate")
			for name, n := range numbers {
				resigned := tt.wantWrite && (tt.only == "" || tt.only == name)
				switch {
				case resigned && n <= last[name]:
					t.Errorf("%s: CRL number %d after %d, want higher", name, n, last[name])
				case !resigned && n != last[name]:
					t.Errorf("%s: CRL number %d changed from %d", name, n, last[name])
				}
				crl := readCRLOf(t, dir, name)
				if !clock.Before(crl.NextUpdate) || clock.Before(crl.ThisUpdate) {
					t.Errorf("%s: CRL valid %s..%s does not cover now %s", name, crl.ThisUpdate, crl.NextUpdate, clock)
				}
			}
			last = numbers
			if got := revokedSerials(readCRL(t, dir)); !slices.Equal(got, wantListed) {
				t.Errorf("intermediate's CRL lists %v, want %v", got, wantListed)
			}
		})
	}
}

// TestRollover walks the rollover procedure of `certgen rollover`'s help.
func TestRollover(t *testing.T) {
	p, dir := newPKI(t)
	oldInter := readChain(t, filepath.Join(dir, "ca/intermediate.crt"))[0]
	oldTeller := serialOf(t, dir, "teller")

	results, err := p.Rollover()
	if err != nil {
		t.Fatalf("Rollover: %v", err)
	}
	want := []string{"ca/intermediate-2.crt", "ca/intermediate-2.key", "ca/state.json", devpki.CRLFile, devpki.IntermediatesFile}
	slices.Sort(want)
	if got := written(t, dir, results); !slices.Equal(got, want) {
		t.Fatalf("Rollover wrote %v, want %v", got, want)
	}
	root := readChain(t, filepath.Join(dir, devpki.BundleFile))[0]
	newInter := readChain(t, filepath.Join(dir, "ca/intermediate-2.crt"))[0]
	if pki.SignedBy(newInter, root) != nil || !newInter.IsCA || newInter.Subject.String() == oldInter.Subject.String() {
		t.Fatalf("new intermediate %q: want a CA with its own name signed by the root", newInter.Subject)
	}
	inters := readChain(t, filepath.Join(dir, devpki.IntermediatesFile))
	if len(inters) != 2 || !inters[0].Equal(oldInter) || !inters[1].Equal(newInter) {
		t.Fatalf("intermediates.crt holds %d certs, want the old then the new intermediate", len(inters))
	}
	if n := readCRLOf(t, dir, "intermediate-2").Number.Int64(); n <= readCRLOf(t, dir, "intermediate").Number.Int64()-1 {
		t.Errorf("new intermediate's first CRL number %d", n)
	}

	t.Run("init keeps the old intermediate's leaves", func(t *testing.T) {
		results, err := p.Init()
		if err != nil {
			t.Fatalf("Init: %v", err)
		}
		if got := written(t, dir, results); len(got) != 0 {
			t.Errorf("Init after a rollover wrote %v, want nothing", got)
		}
	})
	t.Run("issue comes from the new intermediate", func(t *testing.T) {
		if _, err := p.Issue("alice", "", 0); err != nil {
			t.Fatalf("Issue: %v", err)
		}
		chain := readChain(t, filepath.Join(dir, "alice.crt"))
		if len(chain) != 2 || pki.SignedBy(chain[0], newInter) != nil || !chain[1].Equal(newInter) {
			t.Errorf("alice.crt: want a leaf of the new intermediate followed by it")
		}
		if _, err := p.Issue("revoked", "", 0); err != nil {
			t.Fatalf("Issue revoked: %v", err)
		}
		if got := revokedSerials(readCRLOf(t, dir, "intermediate-2")); !slices.Equal(got, []string{serialOf(t, dir, "revoked")}) {
			t.Errorf("new intermediate's CRL lists %v, want the new revoked leaf", got)
		}
	})
	t.Run("revoke the old intermediate", func(t *testing.T) {
		before := readCRLOf(t, dir, "root").Number.Int64()
		results, err := p.RevokeCA("intermediate")
		if err != nil {
			t.Fatalf("RevokeCA: %v", err)
		}
		if got := written(t, dir, results); !slices.Equal(got, []string{"ca/state.json", devpki.CRLFile}) {
			t.Errorf("RevokeCA wrote %v", got)
		}
		rootCRL := readCRLOf(t, dir, "root")
		if got := revokedSerials(rootCRL); !slices.Equal(got, []string{oldInter.SerialNumber.String()}) || rootCRL.Number.Int64() != before+1 {
			t.Errorf("root CRL #%v lists %v, want #%d listing the old intermediate", rootCRL.Number, got, before+1)
		}
		// The old one stays chain material with a CRL, so verifiers see why its leaves fail.
		if n := len(readChain(t, filepath.Join(dir, devpki.IntermediatesFile))); n != 2 {
			t.Errorf("intermediates.crt holds %d certificates, want 2", n)
		}
		readCRLOf(t, dir, "intermediate")
		again, err := p.RevokeCA("intermediate")
		if err != nil || len(written(t, dir, again)) != 0 {
			t.Errorf("RevokeCA again: %v, wrote %v; want no change", err, written(t, dir, again))
		}
	})
	t.Run("init then moves the old intermediate's leaves", func(t *testing.T) {
		results, err := p.Init()
		if err != nil {
			t.Fatalf("Init: %v", err)
		}
		for _, name := range devpki.Names() {
			leaf := readChain(t, filepath.Join(dir, name+".crt"))[0]
			if pki.SignedBy(leaf, oldInter) == nil {
				t.Errorf("%s is still a leaf of the revoked intermediate", name)
			}
		}
		if serialOf(t, dir, "teller") == oldTeller || !slices.Contains(written(t, dir, results), "teller.crt") {
			t.Error("teller was not reissued")
		}
		results, err = p.Init()
		if err != nil || len(written(t, dir, results)) != 0 {
			t.Errorf("second Init: %v, wrote %v; want nothing", err, written(t, dir, results))
		}
	})
	t.Run("a second rollover", func(t *testing.T) {
		if _, err := p.Rollover(); err != nil {
			t.Fatalf("Rollover: %v", err)
		}
		if n := len(readChain(t, filepath.Join(dir, devpki.IntermediatesFile))); n != 3 {
			t.Errorf("intermediates.crt holds %d certificates, want 3", n)
		}
		readCRLOf(t, dir, "intermediate-3")
	})
	t.Run("force starts over", func(t *testing.T) {
		rootNumber := readCRLOf(t, dir, "root").Number.Int64()
		results, err := mustNew(t, dir, devpki.WithForce(true)).Init()
		if err != nil {
			t.Fatalf("Init --force: %v", err)
		}
		var removed []string
		for _, r := range results {
			if r.Action == devpki.Removed {
				removed = append(removed, filepath.Base(r.Path))
			}
		}
		slices.Sort(removed)
		if want := []string{"intermediate-2.crt", "intermediate-2.key", "intermediate-3.crt", "intermediate-3.key"}; !slices.Equal(removed, want) {
			t.Errorf("removed %v, want %v", removed, want)
		}
		if n := len(readChain(t, filepath.Join(dir, devpki.IntermediatesFile))); n != 1 {
			t.Errorf("intermediates.crt holds %d certificates, want 1", n)
		}
		// Same CA names as before: the numbers go on, or verifiers would see a rollback.
		if n := readCRLOf(t, dir, "root").Number.Int64(); n <= rootNumber {
			t.Errorf("root CRL number %d after --force, was %d", n, rootNumber)
		}
	})
}

// TestCACommandErrors: bad input to RevokeCA, Rollover and RefreshCRLs is a clear
// error and changes nothing.
func TestCACommandErrors(t *testing.T) {
	p, dir := newPKI(t)
	empty := filepath.Join(t.TempDir(), "empty")
	noPKI := mustNew(t, empty)
	tests := []struct {
		name    string
		run     func() ([]devpki.FileResult, error)
		wantErr error
		dir     string
	}{
		{name: "revoke the root", run: func() ([]devpki.FileResult, error) { return p.RevokeCA("root") }, wantErr: devpki.ErrRevokeRoot, dir: dir},
		{name: "revoke the issuing intermediate", run: func() ([]devpki.FileResult, error) { return p.RevokeCA("intermediate") }, wantErr: devpki.ErrRevokeIssuing, dir: dir},
		{name: "revoke an unknown CA", run: func() ([]devpki.FileResult, error) { return p.RevokeCA("intermediate-7") }, wantErr: devpki.ErrUnknownCA, dir: dir},
		{name: "revoke a leaf as a CA", run: func() ([]devpki.FileResult, error) { return p.RevokeCA("alice") }, wantErr: devpki.ErrUnknownCA, dir: dir},
		{name: "revoke a path", run: func() ([]devpki.FileResult, error) { return p.RevokeCA("../ca/intermediate") }, wantErr: devpki.ErrUnknownCA, dir: dir},
		{name: "revoke the rogue CA", run: func() ([]devpki.FileResult, error) { return p.RevokeCA("rogue-ca") }, wantErr: devpki.ErrUnknownCA, dir: dir},
		{name: "revoke a CA as a leaf", run: func() ([]devpki.FileResult, error) { return p.Revoke("cacert") }, wantErr: devpki.ErrNotBankIssued, dir: dir},
		{name: "rollover without a PKI", run: noPKI.Rollover, wantErr: devpki.ErrNoCA, dir: empty},
		{name: "refresh without a PKI", run: noPKI.RefreshCRLs, wantErr: devpki.ErrNoCA, dir: empty},
		{name: "revoke a CA without a PKI", run: func() ([]devpki.FileResult, error) { return noPKI.RevokeCA("intermediate") }, wantErr: devpki.ErrNoCA, dir: empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before map[string]fileState
			if _, err := os.Stat(tt.dir); err == nil {
				before = snapshot(t, tt.dir)
			}
			results, err := tt.run()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(results) != 0 {
				t.Errorf("a failed command reported %v", results)
			}
			if before == nil {
				if _, err := os.Stat(tt.dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a failed command created %s", tt.dir)
				}
				return
			}
			if diff := changed(before, snapshot(t, tt.dir)); len(diff) != 0 {
				t.Errorf("a failed command changed %v", diff)
			}
		})
	}
	t.Run("rollover with a broken state", func(t *testing.T) {
		mustWrite(t, filepath.Join(dir, "ca/state.json"), "{")
		before := snapshot(t, dir)
		if _, err := p.Rollover(); !errors.Is(err, devpki.ErrBadState) {
			t.Fatalf("Rollover = %v, want ErrBadState", err)
		}
		if diff := changed(before, snapshot(t, dir)); len(diff) != 0 {
			t.Errorf("a failed Rollover changed %v", diff)
		}
	})
}

// TestImportOldLayout: a dev PKI made before certgen kept a state (ca.crt with root and
// intermediate, crl.pem with the intermediate's CRL only) is taken over without losing
// a revocation or lowering a CRL number.
func TestImportOldLayout(t *testing.T) {
	p, dir := newPKI(t)
	if _, err := p.Revoke("bob"); err != nil {
		t.Fatal(err)
	}
	inter := readCRL(t, dir)
	mustRemove(t, filepath.Join(dir, "ca/state.json"))
	mustRemove(t, filepath.Join(dir, devpki.IntermediatesFile))
	mustWrite(t, filepath.Join(dir, devpki.CRLFile), string(pki.EncodeCRLPEM(inter.Raw)))
	root := readChain(t, filepath.Join(dir, "ca/root.crt"))[0]
	mustWrite(t, filepath.Join(dir, devpki.BundleFile), string(pki.EncodeCertsPEM(root, readChain(t, filepath.Join(dir, "ca/intermediate.crt"))[0])))

	results, err := p.Init()
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	want := []string{"ca/state.json", devpki.BundleFile, devpki.CRLFile, devpki.IntermediatesFile}
	slices.Sort(want)
	if got := written(t, dir, results); !slices.Equal(got, want) {
		t.Errorf("Init wrote %v, want %v", got, want)
	}
	got := readCRL(t, dir)
	if !slices.Equal(revokedSerials(got), revokedSerials(inter)) || got.Number.Cmp(inter.Number) != 0 || !slices.Equal(got.Raw, inter.Raw) {
		t.Errorf("the intermediate's CRL changed on import: #%v %v, was #%v %v", got.Number, revokedSerials(got), inter.Number, revokedSerials(inter))
	}
	readCRLOf(t, dir, "root")
	if len(readChain(t, filepath.Join(dir, devpki.BundleFile))) != 1 {
		t.Error("ca.crt still holds the intermediate")
	}
}

// TestConcurrentCommands: revocations and the periodic `certgen crl` of `make run`
// may run at the same time; the lock on ca/ makes sure no revocation is lost.
func TestConcurrentCommands(t *testing.T) {
	p, dir := newPKI(t)
	const n = 6
	var names []string
	for i := range n {
		name := fmt.Sprintf("c%d", i)
		if _, err := p.Issue(name, "spiffe://bank.local/customer/"+name, time.Hour); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	force := mustNew(t, dir, devpki.WithForce(true))
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, name := range names {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := p.Revoke(name)
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := force.RefreshCRLs()
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	listed := revokedSerials(readCRL(t, dir))
	for _, name := range names {
		if !slices.Contains(listed, serialOf(t, dir, name)) {
			t.Errorf("%s's revocation was lost", name)
		}
	}
}
