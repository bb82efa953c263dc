package devpki

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"mtlsbank/internal/pki"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

// state is what certgen remembers between runs, in CADir/state.json: which CAs it runs,
// which intermediate issues new leaves, and per CA the last CRL number it signed and
// the serials it revoked. crl.pem is derived from it, so deleting crl.pem loses no
// revocation and a re-signed CRL always gets a higher number.
type state struct {
	Version int       `json:"version"`
	Issuing string    `json:"issuing"` // name of the intermediate that issues new leaves
	CAs     []caState `json:"cas"`     // the root first, then intermediates oldest first
}

// caState is one CA: its files are CADir/NAME.crt and CADir/NAME.key.
type caState struct {
	Name      string         `json:"name"`
	CRLNumber int64          `json:"crl_number"` // the last CRL number signed (0: none yet)
	Revoked   []revokedEntry `json:"revoked,omitempty"`
}

// revokedEntry is a serial this CA revoked.
type revokedEntry struct {
	Serial string    `json:"serial"` // upper-case hex, as openssl prints it
	Time   time.Time `json:"time"`   // revocation time, whole seconds (what a CRL holds)
	Name   string    `json:"name,omitempty"`
}

// intermediateName matches the names of intermediates: "intermediate" (the first),
// then "intermediate-2", "intermediate-3", ... for each rollover.
var intermediateName = regexp.MustCompile(`^intermediate(-([2-9]|[1-9][0-9]{1,5}))?$`)

// generation is 1 for "intermediate" and N for "intermediate-N".
func generation(name string) int {
	m := intermediateName.FindStringSubmatch(name)
	if m == nil || m[2] == "" {
		return 1
	}
	n, _ := strconv.Atoi(m[2])
	return n
}

// intermediateNameOf is the inverse of generation.
func intermediateNameOf(gen int) string {
	if gen == 1 {
		return "intermediate"
	}
	return "intermediate-" + strconv.Itoa(gen)
}

func newState() *state {
	return &state{
		Version: stateVersion,
		Issuing: intermediateNameOf(1),
		CAs:     []caState{{Name: rootName}, {Name: intermediateNameOf(1)}},
	}
}

// ca returns the state of the CA called name, or nil.
func (st *state) ca(name string) *caState {
	for i := range st.CAs {
		if st.CAs[i].Name == name {
			return &st.CAs[i]
		}
	}
	return nil
}

// validate checks what load cannot check by type.
func (st *state) validate() error {
	if st.Version != stateVersion {
		return fmt.Errorf("version %d, want %d", st.Version, stateVersion)
	}
	if len(st.CAs) < 2 || st.CAs[0].Name != rootName {
		return errors.New("want the root first and at least one intermediate")
	}
	seen := map[string]bool{}
	for _, c := range st.CAs {
		if c.Name != rootName && !intermediateName.MatchString(c.Name) {
			return fmt.Errorf("bad CA name %q", c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("CA %q listed twice", c.Name)
		}
		seen[c.Name] = true
		if c.CRLNumber < 0 {
			return fmt.Errorf("CA %q: negative CRL number", c.Name)
		}
		for _, e := range c.Revoked {
			if _, ok := new(big.Int).SetString(e.Serial, 16); !ok {
				return fmt.Errorf("CA %q: bad serial %q", c.Name, e.Serial)
			}
		}
	}
	if st.Issuing == rootName || !seen[st.Issuing] {
		return fmt.Errorf("issuing intermediate %q is not listed", st.Issuing)
	}
	return nil
}

// marshal is the file content: stable, so that an unchanged state is kept byte for byte.
func (st *state) marshal() ([]byte, error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal state: %w", err)
	}
	return append(data, '\n'), nil
}

// revoke adds serial to the CA's list; it reports false if it was already listed.
func (c *caState) revoke(serial *big.Int, at time.Time, name string) bool {
	hex := serialText(serial)
	for _, e := range c.Revoked {
		if e.Serial == hex {
			return false
		}
	}
	c.Revoked = append(c.Revoked, revokedEntry{Serial: hex, Time: at.UTC().Truncate(time.Second), Name: name})
	return true
}

// lists reports whether serial is revoked by the CA.
func (c *caState) lists(serial *big.Int) bool {
	hex := serialText(serial)
	return slices.ContainsFunc(c.Revoked, func(e revokedEntry) bool { return e.Serial == hex })
}

// entries are the CRL entries of the CA.
func (c *caState) entries() []x509.RevocationListEntry {
	out := make([]x509.RevocationListEntry, 0, len(c.Revoked))
	for _, e := range c.Revoked {
		serial, _ := new(big.Int).SetString(e.Serial, 16) // checked by validate
		out = append(out, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: e.Time})
	}
	return out
}

// sameEntries reports whether crl lists exactly the CA's serials with their times.
func (c *caState) sameEntries(crl *x509.RevocationList) bool {
	if len(crl.RevokedCertificateEntries) != len(c.Revoked) {
		return false
	}
	for i, e := range crl.RevokedCertificateEntries {
		want := c.Revoked[i]
		if serialText(e.SerialNumber) != want.Serial || !e.RevocationTime.Equal(want.Time) {
			return false
		}
	}
	return true
}

func serialText(serial *big.Int) string { return fmt.Sprintf("%X", serial) }

// readState reads CADir/state.json; ok is false if it does not exist.
func (s *session) readState() (st *state, ok bool, err error) {
	data, err := os.ReadFile(s.path(stateRel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	st = &state{}
	if err := dec.Decode(st); err != nil {
		return nil, false, fmt.Errorf("%w: %s: %w", ErrBadState, s.path(stateRel), err)
	}
	if err := st.validate(); err != nil {
		return nil, false, fmt.Errorf("%w: %s: %w", ErrBadState, s.path(stateRel), err)
	}
	return st, true, nil
}

// importState builds the state of a dev PKI made before certgen kept one: the root and
// the first intermediate, with the numbers and entries of their CRLs in crl.pem (the
// old crl.pem held the intermediate's only).
func (s *session) importState(root, inter *pki.CA) (*state, error) {
	st := newState()
	data, err := os.ReadFile(s.path(CRLFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCRL, err)
	}
	crls, err := pki.ParseCRLs(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadCRL, s.path(CRLFile), err)
	}
	for _, crl := range crls {
		for i, ca := range []*pki.CA{root, inter} {
			if !bytes.Equal(crl.RawIssuer, ca.Cert.RawSubject) || crl.CheckSignatureFrom(ca.Cert) != nil {
				continue
			}
			c := &st.CAs[i]
			if crl.Number != nil && crl.Number.IsInt64() && crl.Number.Int64() > c.CRLNumber {
				c.CRLNumber = crl.Number.Int64()
			}
			for _, e := range crl.RevokedCertificateEntries {
				c.revoke(e.SerialNumber, e.RevocationTime, "")
			}
		}
	}
	if st.CAs[1].CRLNumber == 0 {
		return nil, fmt.Errorf("%w: %s holds no CRL signed by %s", ErrBadCRL, s.path(CRLFile), filepath.Join(CADir, interCertFile))
	}
	return st, nil
}
