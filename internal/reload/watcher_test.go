package reload_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mtlsbank/internal/authz"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/pki/pkitest"
	"mtlsbank/internal/reload"
	"mtlsbank/internal/tlsconfig"
)

// waitFor is how long a test waits for Run to report before failing.
const waitFor = 10 * time.Second

func TestWatcherTakesChangedCertificate(t *testing.T) {
	tests := []struct {
		name  string
		write func(tb testing.TB, f *fixture, l *pki.Leaf)
	}{
		{"replaced by rename", func(tb testing.TB, f *fixture, l *pki.Leaf) {
			f.pki.WriteLeaf(tb, "accounts", l)
		}},
		{"rewritten in place", func(tb testing.TB, f *fixture, l *pki.Leaf) {
			writeFile(tb, f.key, keyPEM(tb, l))
			writeFile(tb, f.cert, pki.EncodeCertsPEM(l.Chain...))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			old := f.serial()
			if got := f.w.CheckNow(context.Background()); len(got) != 0 {
				t.Fatalf("poll with nothing changed attempted %v", got)
			}
			next := f.pki.Server(t, serverID)
			tc.write(t, f, next)
			got := f.settle(t)
			want := []reload.Result{{Group: "certificate"}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("results = %v, want %v", got, want)
			}
			if s := f.serial(); s == old || s != next.Cert.SerialNumber.Text(16) {
				t.Fatalf("serial = %s, want the new %s (old %s)", s, next.Cert.SerialNumber.Text(16), old)
			}
			if got := f.w.CheckNow(context.Background()); len(got) != 0 {
				t.Fatalf("poll after the reload attempted %v again", got)
			}
		})
	}
}

func TestWatcherIgnoresIdenticalRewrite(t *testing.T) {
	f := newFixture(t)
	data, err := os.ReadFile(f.crl)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, f.crl, data) // new inode and mtime, same content
	for range 2 {
		if got := f.w.CheckNow(context.Background()); len(got) != 0 {
			t.Fatalf("identical rewrite attempted %v", got)
		}
	}
	if n := f.reports.count(); n != 0 {
		t.Fatalf("%d reloads reported, want 0", n)
	}
}

// TestWatcherFollowsSymlinkSwap mimics a Kubernetes secret volume: the watched path is a
// symlink through "..data", which the kubelet repoints at a new directory.
func TestWatcherFollowsSymlinkSwap(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	writeVersion := func(name string, l *pki.Leaf) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "tls.crt"), pki.EncodeCertsPEM(l.Chain...))
		writeFile(t, filepath.Join(dir, name, "tls.key"), keyPEM(t, l))
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..v1", f.leaf)
	for _, n := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	w := reload.New(nil)
	if err := w.Add("certificate", reload.Certificate(f.src), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
		t.Fatal(err)
	}
	next := f.pki.Server(t, serverID)
	writeVersion("..v2", next)
	w.CheckNow(context.Background())
	got := w.CheckNow(context.Background())
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("results = %v, want one successful certificate reload", got)
	}
	if f.serial() != next.Cert.SerialNumber.Text(16) {
		t.Fatalf("serial = %s, want %s", f.serial(), next.Cert.SerialNumber.Text(16))
	}
}

func TestWatcherKeepsLastGoodOnBrokenFile(t *testing.T) {
	snapCert := func(f *fixture) string { return f.serial() }
	snapBundle := func(f *fixture) string { return fmt.Sprint(len(f.src.Bundle()), "+", len(f.src.Intermediates())) }
	snapCRL := func(f *fixture) string { return fmt.Sprintf("%p", f.src.CRL()) }
	snapPolicy := func(f *fixture) string { return fmt.Sprintf("%p", f.az.Policy()) }
	fixCert := func(tb testing.TB, f *fixture) { f.pki.WriteLeaf(tb, "accounts", f.pki.Server(tb, serverID)) }
	fixBundle := func(tb testing.TB, f *fixture) {
		writeAtomic(tb, f.ca, pki.EncodeCertsPEM(f.pki.Root.Cert, f.pki.Intermediate.Cert))
	}
	fixCRL := func(tb testing.TB, f *fixture) {
		f.pki.WriteCRL(tb, f.pki.CRL(tb, f.pki.Client(tb, "spiffe://bank.local/customer/alice").Cert))
	}
	fixPolicy := func(tb testing.TB, f *fixture) {
		writeAtomic(tb, f.policy, []byte(goodPolicy+"# reviewed\n"))
	}
	newLeaf := func(tb testing.TB, f *fixture, opts ...pki.Option) *pki.Leaf {
		return f.pki.Server(tb, serverID, opts...)
	}

	tests := []struct {
		name    string
		group   string
		breakIt func(tb testing.TB, f *fixture)
		wantErr error // nil: any error
		snap    func(f *fixture) string
		fix     func(tb testing.TB, f *fixture)
	}{
		{
			name: "certificate cut inside its second block", group: "certificate", wantErr: reload.ErrTruncated,
			breakIt: func(tb testing.TB, f *fixture) {
				l := newLeaf(tb, f)
				full := pki.EncodeCertsPEM(l.Chain...)
				writeFile(tb, f.key, keyPEM(tb, l))
				writeFile(tb, f.cert, full[:len(full)-200])
			},
			snap: snapCert, fix: fixCert,
		},
		{
			name: "certificate cut inside its end marker", group: "certificate", wantErr: reload.ErrTruncated,
			breakIt: func(tb testing.TB, f *fixture) {
				l := newLeaf(tb, f)
				writeFile(tb, f.key, keyPEM(tb, l))
				writeFile(tb, f.cert, append(pki.EncodeCertsPEM(l.Cert), "-----BEG"...))
			},
			snap: snapCert, fix: fixCert,
		},
		{
			name: "certificate cut after the leaf (intermediate missing)", group: "certificate",
			wantErr: errors.New("x509.UnknownAuthorityError"),
			breakIt: func(tb testing.TB, f *fixture) {
				l := newLeaf(tb, f)
				writeFile(tb, f.key, keyPEM(tb, l))
				writeFile(tb, f.cert, pki.EncodeCertsPEM(l.Cert))
			},
			snap: snapCert, fix: fixCert,
		},
		{
			name: "certificate without its key", group: "certificate",
			breakIt: func(tb testing.TB, f *fixture) {
				f.pki.WriteLeaf(tb, "other", newLeaf(tb, f))
				writeAtomic(tb, f.cert, pki.EncodeCertsPEM(newLeaf(tb, f).Chain...))
			},
			snap: snapCert, fix: fixCert,
		},
		{
			name: "certificate of another identity", group: "certificate", wantErr: reload.ErrIdentityChanged,
			breakIt: func(tb testing.TB, f *fixture) {
				f.pki.WriteLeaf(tb, "accounts", f.pki.Server(tb, "spiffe://bank.local/service/payments"))
			},
			snap: snapCert, fix: fixCert,
		},
		{
			name: "expired certificate", group: "certificate", wantErr: errors.New("x509.CertificateInvalidError"),
			breakIt: func(tb testing.TB, f *fixture) {
				now := time.Now()
				f.pki.WriteLeaf(tb, "accounts", newLeaf(tb, f, pki.WithValidity(now.Add(-2*time.Hour), now.Add(-time.Hour))))
			},
			snap: snapCert, fix: fixCert,
		},
		{
			name: "certificate deleted", group: "certificate", wantErr: fs.ErrNotExist,
			breakIt: func(tb testing.TB, f *fixture) {
				if err := os.Remove(f.cert); err != nil {
					tb.Fatal(err)
				}
			},
			snap: snapCert, fix: fixCert,
		},
		{
			name: "bundle of garbage", group: "bundle", wantErr: pki.ErrNoPEM,
			breakIt: func(tb testing.TB, f *fixture) { writeAtomic(tb, f.ca, []byte("garbage\n")) },
			snap:    snapBundle, fix: fixBundle,
		},
		{
			name: "bundle holding a leaf", group: "bundle", wantErr: tlsconfig.ErrNotCA,
			breakIt: func(tb testing.TB, f *fixture) {
				writeAtomic(tb, f.ca, pki.EncodeCertsPEM(f.pki.Root.Cert, f.leaf.Cert))
			},
			snap: snapBundle, fix: fixBundle,
		},
		{
			name: "CRL of garbage", group: "crl",
			breakIt: func(tb testing.TB, f *fixture) { writeAtomic(tb, f.crl, []byte("garbage\n")) },
			snap:    snapCRL, fix: fixCRL,
		},
		{
			name: "CRL emptied", group: "crl",
			breakIt: func(tb testing.TB, f *fixture) { writeFile(tb, f.crl, nil) },
			snap:    snapCRL, fix: fixCRL,
		},
		{
			name: "CRL cut short", group: "crl", wantErr: reload.ErrTruncated,
			breakIt: func(tb testing.TB, f *fixture) {
				full := f.pki.CRL(tb)
				writeFile(tb, f.crl, full[:len(full)/2])
			},
			snap: snapCRL, fix: fixCRL,
		},
		{
			name: "CRL of a foreign CA", group: "crl", wantErr: tlsconfig.ErrCRLIssuer,
			breakIt: func(tb testing.TB, f *fixture) { writeAtomic(tb, f.crl, pkitest.New(tb).CRL(tb)) },
			snap:    snapCRL, fix: fixCRL,
		},
		{
			name: "policy of garbage", group: "policy", wantErr: errors.New("*authz.LineError"),
			breakIt: func(tb testing.TB, f *fixture) { writeAtomic(tb, f.policy, []byte("roles: [\n")) },
			snap:    snapPolicy, fix: fixPolicy,
		},
		{
			name: "policy cut at a line (method lost)", group: "policy", wantErr: authz.ErrUncoveredMethods,
			breakIt: func(tb testing.TB, f *fixture) {
				writeFile(tb, f.policy, []byte(goodPolicy[:strings.Index(goodPolicy, "  teller:")]))
			},
			snap: snapPolicy, fix: fixPolicy,
		},
		{
			name: "policy of another trust domain", group: "policy", wantErr: reload.ErrTrustDomainChanged,
			breakIt: func(tb testing.TB, f *fixture) {
				writeAtomic(tb, f.policy, []byte(strings.ReplaceAll(goodPolicy, "bank.local", "other.local")))
			},
			snap: snapPolicy, fix: fixPolicy,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			before := tc.snap(f)
			tc.breakIt(t, f)
			got := f.settle(t)
			if len(got) != 1 || got[0].Group != tc.group || got[0].Err == nil {
				t.Fatalf("results = %v, want one failed %s reload", got, tc.group)
			}
			checkErr(t, got[0].Err, tc.wantErr)
			if after := tc.snap(f); after != before {
				t.Fatalf("state changed from %s to %s by a broken file", before, after)
			}
			logs := f.logs.String()
			if !strings.Contains(logs, `"level":"WARN"`) || !strings.Contains(logs, `"group":"`+tc.group+`"`) {
				t.Fatalf("no warning naming group %s in the log:\n%s", tc.group, logs)
			}
			if again := f.w.CheckNow(context.Background()); len(again) != 0 {
				t.Fatalf("an unchanged broken file was retried: %v", again)
			}

			tc.fix(t, f)
			got = f.settle(t)
			if len(got) != 1 || got[0].Group != tc.group || got[0].Err != nil {
				t.Fatalf("after the fix: results = %v, want one successful %s reload", got, tc.group)
			}
			if after := tc.snap(f); after == before {
				t.Fatalf("fixed file not taken: state still %s", after)
			}
			if n := f.reports.count(); n != 2 {
				t.Fatalf("%d reloads reported, want 2 (failure, success)", n)
			}
		})
	}
}

// checkErr checks err against want: a sentinel (errors.Is), or an errors.New naming
// the type that errors.As must find.
func checkErr(tb testing.TB, err, want error) {
	tb.Helper()
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		lineErr   *authz.LineError
	)
	switch {
	case want == nil:
	case want.Error() == "x509.UnknownAuthorityError":
		if !errors.As(err, &unknownCA) {
			tb.Fatalf("err = %v, want an x509.UnknownAuthorityError", err)
		}
	case want.Error() == "x509.CertificateInvalidError":
		if !errors.As(err, &invalid) {
			tb.Fatalf("err = %v, want an x509.CertificateInvalidError", err)
		}
	case want.Error() == "*authz.LineError":
		if !errors.As(err, &lineErr) {
			tb.Fatalf("err = %v, want an *authz.LineError", err)
		}
	default:
		if !errors.Is(err, want) {
			tb.Fatalf("err = %v, want %v", err, want)
		}
	}
}

func TestRunReloadsOnSignal(t *testing.T) {
	tests := []struct {
		name    string
		trigger func(w *reload.Watcher, sig chan os.Signal)
		garbage bool
	}{
		{"SIGHUP takes a new CRL", func(_ *reload.Watcher, sig chan os.Signal) { sig <- syscall.SIGHUP }, false},
		{"Trigger takes a new CRL", func(w *reload.Watcher, _ chan os.Signal) { w.Trigger() }, false},
		{"SIGHUP over a garbage CRL keeps the last good", func(_ *reload.Watcher, sig chan os.Signal) { sig <- syscall.SIGHUP }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sig := make(chan os.Signal, 1)
			// No polling: only the signal can cause the reload.
			f := newFixture(t, reload.WithInterval(0), reload.WithSignal(sig))
			alice := f.pki.Client(t, "spiffe://bank.local/customer/alice")
			before := f.src.CRL()
			if tc.garbage {
				writeFile(t, f.crl, []byte("garbage"))
			} else {
				f.pki.WriteCRL(t, f.pki.CRL(t, alice.Cert))
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.w.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			tc.trigger(f.w, sig)
			res := waitReport(t, f.reports, "crl")
			err := f.src.CheckRevoked(alice.Cert)
			if tc.garbage {
				if res.Err == nil || f.src.CRL() != before || err != nil {
					t.Fatalf("garbage CRL: report err %v, CRL swapped %v, revoked %v; want failure and the old CRL", res.Err, f.src.CRL() != before, err)
				}
				return
			}
			if res.Err != nil || !errors.Is(err, tlsconfig.ErrRevoked) {
				t.Fatalf("report err %v, CheckRevoked = %v; want success and alice revoked", res.Err, err)
			}
		})
	}
}

func TestRunPolls(t *testing.T) {
	f := newFixture(t, reload.WithInterval(5*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	next := f.pki.Server(t, serverID)
	f.pki.WriteLeaf(t, "accounts", next)
	// The certificate and the key are two files written one after the other: a poll may
	// fall between them and refuse the new certificate with the old key (the last good
	// pair stays). The key's change then triggers the reload that succeeds.
	for res := waitReport(t, f.reports, "certificate"); res.Err != nil; res = waitReport(t, f.reports, "certificate") {
		if !strings.Contains(res.Err.Error(), "does not match") {
			t.Fatalf("reload failed: %v", res.Err)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if f.serial() != next.Cert.SerialNumber.Text(16) {
		t.Fatalf("serial = %s, want %s", f.serial(), next.Cert.SerialNumber.Text(16))
	}
}

func waitReport(tb testing.TB, r *recorder, group string) reload.Result {
	tb.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case res := <-r.ch:
			if res.Group == group {
				return res
			}
		case <-deadline:
			tb.Fatalf("no %s reload reported within %s", group, waitFor)
		}
	}
}

// TestWatcherRetriesAfterDependency: a CRL signed by a new intermediate cannot be
// verified until the certificate chain that brings that intermediate is taken; it is
// retried as soon as it is, without waiting for the CRL file to change again.
func TestWatcherRetriesAfterDependency(t *testing.T) {
	f := newFixture(t)
	inter2, err := f.pki.Root.NewIntermediate("pkitest Intermediate CA 2", pki.WithTTL(pkitest.CATTL))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := inter2.CreateCRL(nil, big1(), now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The root's CRL stays in the set (dropping it would be a rollback); the first
	// intermediate's goes with the certificate it issued.
	f.pki.WriteCRL(t, append(f.pki.SignCRL(t, pkitest.CRLSpec{Issuer: f.pki.Root}), pki.EncodeCRLPEM(der)...))
	got := f.settle(t)
	if len(got) != 1 || !errors.Is(got[0].Err, tlsconfig.ErrCRLIssuer) {
		t.Fatalf("results = %v, want the CRL rejected for its unknown issuer", got)
	}

	leaf2, err := inter2.Issue(pki.Request{CommonName: "accounts", SPIFFEIDs: []string{serverID}, DNSNames: []string{"localhost"}, Usage: pki.ServerAuth | pki.ClientAuth}, pki.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.pki.WriteLeaf(t, "accounts", leaf2)
	got = f.settle(t)
	want := []reload.Result{{Group: "certificate"}, {Group: "crl"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("results = %v, want %v", got, want)
	}
}

func TestWatcherFileTooLarge(t *testing.T) {
	f := newFixture(t, reload.WithMaxFileSize(int64(len(goodPolicy))))
	writeAtomic(t, f.policy, []byte(goodPolicy+"# padding\n"))
	got := f.settle(t)
	if len(got) != 1 || !errors.Is(got[0].Err, reload.ErrTooLarge) {
		t.Fatalf("results = %v, want policy rejected with ErrTooLarge", got)
	}
}

func TestAddRejects(t *testing.T) {
	fn := func([]reload.File) error { return nil }
	tests := []struct {
		name  string
		group string
		fn    reload.Func
		paths []string
	}{
		{"empty name", "", fn, []string{"a"}},
		{"nil func", "g", nil, []string{"a"}},
		{"no files", "g", fn, nil},
		{"empty path", "g", fn, []string{"a", ""}},
		{"duplicate group", "dup", fn, []string{"a"}},
	}
	w := reload.New(nil)
	if err := w.Add("dup", fn, filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Fatalf("Add of a missing file: %v (the file may appear later)", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := w.Add(tc.group, tc.fn, tc.paths...); err == nil {
				t.Fatal("Add succeeded, want an error")
			}
		})
	}
}
