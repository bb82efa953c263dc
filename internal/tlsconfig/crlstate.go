package tlsconfig

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"

	"mtlsbank/internal/pki"
)

// Sentinel errors of CRLHistory.
var (
	// ErrCRLState means the CRL state file cannot be read or is malformed.
	ErrCRLState = errors.New("CRL state file unusable")
	// ErrCRLStateWrite means the CRL state file could not be written; the CRL set it was
	// recording is in force nonetheless.
	ErrCRLStateWrite = errors.New("CRL state file not written")
)

// crlStateVersion is the format version of the state file.
const crlStateVersion = 1

// CRLHistory remembers, per issuing CA, the highest CRL number a service has taken and
// that CRL's digest, in a small JSON file, so that a CRL rolled back while the service was
// down is refused at the next start as it would have been by a reload. The file is
// written atomically with mode 0600, and set to 0600 when loaded with another mode.
// Safe for concurrent use.
type CRLHistory struct {
	path string

	mu   sync.Mutex
	seen map[string]crlRecord // hex SHA-256 of issuerKey -> record
}

// crlRecord is one issuer's entry in the state file.
type crlRecord struct {
	Issuer string `json:"issuer"` // subject, for people reading the file
	Number string `json:"number"` // decimal
	SHA256 string `json:"sha256"` // of the CRL's DER
}

type crlStateFile struct {
	Version int                  `json:"version"`
	Issuers map[string]crlRecord `json:"issuers"`
}

// LoadCRLHistory reads the state file at path; a missing file is an empty history (the
// first start). A file that exists but cannot be read or parsed is an error: starting
// without it would silently drop the rollback protection.
func LoadCRLHistory(path string) (*CRLHistory, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrCRLState)
	}
	h := &CRLHistory{path: path, seen: make(map[string]crlRecord)}
	data, err := readPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCRLState, err)
	}
	var f crlStateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCRLState, path, err)
	}
	if f.Version != crlStateVersion {
		return nil, fmt.Errorf("%w: %s: version %d, want %d", ErrCRLState, path, f.Version, crlStateVersion)
	}
	for k, r := range f.Issuers {
		if _, ok := new(big.Int).SetString(r.Number, 10); !ok || len(k) != 2*sha256.Size {
			return nil, fmt.Errorf("%w: %s: bad entry %q", ErrCRLState, path, k)
		}
		h.seen[k] = r
	}
	return h, nil
}

// crlStateMode is the mode of the state file, whatever mode it was found with: it is
// not secret, but which CRLs a bank's service has taken is nobody else's business, and
// it is the bank's convention for files under the data directory.
const crlStateMode fs.FileMode = 0o600

// readPrivate reads the regular file at path, first setting its mode to crlStateMode
// if it has another (a file written by an earlier version, or copied with 0644). The
// change goes through the open descriptor, so a file swapped in meanwhile is not
// touched.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if fi.Mode().Perm() != crlStateMode {
		if err := f.Chmod(crlStateMode); err != nil {
			return nil, fmt.Errorf("make %s private (mode %04o): %w", path, crlStateMode, err)
		}
	}
	return io.ReadAll(f)
}

// Path returns the state file's path.
func (h *CRLHistory) Path() string { return h.path }

// Check refuses crl if, for one of its issuers, the history remembers a higher CRL number,
// or the same number with another digest, or if it has no CRL for a CA of issuers (the
// CAs trusted now) whose CRL the history remembers: dropping a CRL from the bundle while
// the service is down would otherwise undo its revocations. Issuers the history does not
// know are fine.
func (h *CRLHistory) Check(crl *CRL, issuers []*x509.Certificate) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ca := range issuers {
		r, ok := h.seen[historyKey(ca.RawSubject, ca.RawSubjectPublicKeyInfo)]
		if ok && crl.For(ca) == nil {
			return fmt.Errorf("%w: no CRL of %s, whose CRL number %s was already taken (recorded in %s); deploy that CRL or a newer one",
				ErrCRLRollback, ca.Subject, r.Number, h.path)
		}
	}
	for _, l := range crl.Lists() {
		r, ok := h.seen[historyKey(l.Issuer.RawSubject, l.Issuer.RawSubjectPublicKeyInfo)]
		if !ok {
			continue
		}
		seen, _ := new(big.Int).SetString(r.Number, 10)
		switch c := l.Number.Cmp(seen); {
		case c < 0:
			return fmt.Errorf("%w: CRL of %s has number %s, lower than %s already taken (recorded in %s); deploy that CRL or a newer one",
				ErrCRLRollback, l.Issuer.Subject, l.Number, seen, h.path)
		case c == 0 && hex.EncodeToString(l.Digest[:]) != r.SHA256:
			return fmt.Errorf("%w: CRL of %s has number %s, as the one already taken, but other content (recorded in %s)",
				ErrCRLRollback, l.Issuer.Subject, l.Number, h.path)
		}
	}
	return nil
}

// Record raises the remembered numbers to crl's and writes the file if anything changed.
func (h *CRLHistory) Record(crl *CRL) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := false
	for _, l := range crl.Lists() {
		k := historyKey(l.Issuer.RawSubject, l.Issuer.RawSubjectPublicKeyInfo)
		if r, ok := h.seen[k]; ok {
			if seen, _ := new(big.Int).SetString(r.Number, 10); l.Number.Cmp(seen) <= 0 {
				continue
			}
		}
		h.seen[k] = crlRecord{Issuer: l.Issuer.Subject.String(), Number: l.Number.String(), SHA256: hex.EncodeToString(l.Digest[:])}
		changed = true
	}
	if !changed {
		return nil
	}
	data, err := json.MarshalIndent(crlStateFile{Version: crlStateVersion, Issuers: h.seen}, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCRLStateWrite, err)
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrCRLStateWrite, err)
	}
	if err := pki.WriteFileAtomic(h.path, append(data, '\n'), crlStateMode); err != nil {
		return fmt.Errorf("%w: %w", ErrCRLStateWrite, err)
	}
	return nil
}

func historyKey(rawSubject, rawSPKI []byte) string {
	sum := sha256.Sum256([]byte(string(rawSubject) + "\x00" + string(rawSPKI)))
	return hex.EncodeToString(sum[:])
}
