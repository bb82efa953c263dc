package devpki_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"mtlsbank/internal/devpki"
	"mtlsbank/internal/pki"
)

// newPKI makes a dev PKI in a fresh temp dir and runs Init once.
func newPKI(tb testing.TB, opts ...devpki.Option) (*devpki.PKI, string) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "dev")
	p := mustNew(tb, dir, opts...)
	if _, err := p.Init(); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	return p, dir
}

func mustNew(tb testing.TB, dir string, opts ...devpki.Option) *devpki.PKI {
	tb.Helper()
	p, err := devpki.New(dir, opts...)
	if err != nil {
		tb.Fatalf("devpki.New: %v", err)
	}
	return p
}

// fileState is what a snapshot remembers of a file.
type fileState struct {
	data string
	mode fs.FileMode
}

// snapshot records every file under dir (relative path -> content and mode).
func snapshot(tb testing.TB, dir string) map[string]fileState {
	tb.Helper()
	files := map[string]fileState{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			files[rel+"/"] = fileState{mode: info.Mode()}
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[rel] = fileState{data: string(data), mode: info.Mode()}
		return nil
	})
	if err != nil {
		tb.Fatalf("snapshot %s: %v", dir, err)
	}
	return files
}

// changed lists the files that differ between two snapshots.
func changed(before, after map[string]fileState) []string {
	var diff []string
	for name, st := range after {
		if old, ok := before[name]; !ok || old != st {
			diff = append(diff, name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			diff = append(diff, name+" (removed)")
		}
	}
	slices.Sort(diff)
	return diff
}

// written lists the files (relative to dir) that results report as written.
func written(tb testing.TB, dir string, results []devpki.FileResult) []string {
	tb.Helper()
	var names []string
	for _, r := range results {
		if r.Action == devpki.Wrote {
			rel, err := filepath.Rel(dir, r.Path)
			if err != nil {
				tb.Fatal(err)
			}
			names = append(names, rel)
		}
	}
	slices.Sort(names)
	return names
}

func leafFiles(names ...string) []string {
	var files []string
	for _, n := range names {
		files = append(files, n+".crt", n+".key", n+".p12")
	}
	slices.Sort(files)
	return files
}

func readChain(tb testing.TB, path string) []*x509.Certificate {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return certs
}

// readCRL returns the CRL of the first intermediate in crl.pem.
func readCRL(tb testing.TB, dir string) *x509.RevocationList {
	tb.Helper()
	return readCRLOf(tb, dir, "intermediate")
}

// readCRLOf returns the one CRL in crl.pem that the CA ca/NAME.crt issued and signed.
func readCRLOf(tb testing.TB, dir, name string) *x509.RevocationList {
	tb.Helper()
	ca := readChain(tb, filepath.Join(dir, devpki.CADir, name+".crt"))[0]
	var found []*x509.RevocationList
	for _, crl := range readCRLs(tb, dir) {
		if bytes.Equal(crl.RawIssuer, ca.RawSubject) && crl.CheckSignatureFrom(ca) == nil {
			found = append(found, crl)
		}
	}
	if len(found) != 1 {
		tb.Fatalf("crl.pem holds %d CRLs of %s, want 1", len(found), name)
	}
	return found[0]
}

// readCRLs returns every CRL in crl.pem, in order.
func readCRLs(tb testing.TB, dir string) []*x509.RevocationList {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(dir, devpki.CRLFile))
	if err != nil {
		tb.Fatal(err)
	}
	crls, err := pki.ParseCRLs(data)
	if err != nil {
		tb.Fatalf("crl.pem: %v", err)
	}
	return crls
}

func revokedSerials(crl *x509.RevocationList) []string {
	var serials []string
	for _, e := range crl.RevokedCertificateEntries {
		serials = append(serials, e.SerialNumber.String())
	}
	slices.Sort(serials)
	return serials
}

func serialOf(tb testing.TB, dir, name string) string {
	tb.Helper()
	return readChain(tb, filepath.Join(dir, name+".crt"))[0].SerialNumber.String()
}

// opensslPath finds openssl; the checks below are the point of the test, so a
// machine without it fails rather than skips.
func opensslPath(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		tb.Fatalf("openssl is required for this test: %v", err)
	}
	return path
}

// openssl runs openssl in dir and returns its combined output and error.
func openssl(tb testing.TB, dir string, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, opensslPath(tb), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
