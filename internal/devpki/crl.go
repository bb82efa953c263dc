package devpki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"mtlsbank/internal/pki"
)

// crlBackdate is how far before now a CRL's thisUpdate lies, so that a peer whose
// clock runs slightly behind does not see a CRL from the future.
const crlBackdate = time.Minute

// commit writes what an operation changed in the state: the state file, then
// intermediates.crt, then crl.pem, in that order so that a crash in between leaves
// files the next run repairs, and CRL numbers that only go up. crl.pem gets a CRL for
// the root and for every published intermediate. A CA's CRL already in crl.pem is kept
// if it lists exactly what the state says under the state's number and more than half
// its validity remains; otherwise it is re-signed with the next number. If one CRL is
// past half its validity, or resignAll, every CRL is re-signed. why explains a
// re-signing in the result line; it defaults to the reason found.
func (s *session) commit(cas *authorities, resignAll bool, why string) error {
	type signer struct {
		ca *pki.CA
		st *caState
	}
	signers := []signer{{cas.root, &cas.st.CAs[0]}}
	for _, in := range cas.published() {
		signers = append(signers, signer{in.ca, cas.st.ca(in.name)})
	}

	onDisk, problem := s.readCRLs()
	kept := make([][]byte, len(signers))
	var reasons []string
	for i, sg := range signers {
		crl := findCRL(onDisk, sg.ca.Cert)
		switch {
		case crl == nil && problem != "":
			reasons = appendOnce(reasons, problem)
		case crl == nil:
			reasons = appendOnce(reasons, "new CRL of "+sg.ca.Cert.Subject.CommonName)
		case crl.Number == nil || !crl.Number.IsInt64() || crl.Number.Int64() != sg.st.CRLNumber || !sg.st.sameEntries(crl):
			reasons = appendOnce(reasons, "revocations of "+sg.ca.Cert.Subject.CommonName)
			// A CRL newer than the state (a state restored from a backup) still
			// must never be followed by a lower number.
			if crl.Number != nil && crl.Number.IsInt64() && crl.Number.Int64() > sg.st.CRLNumber {
				sg.st.CRLNumber = crl.Number.Int64()
			}
		case crlDue(crl, s.now):
			resignAll = true
			reasons = appendOnce(reasons, "next update "+crl.NextUpdate.UTC().Format(time.RFC3339))
		default:
			kept[i] = crl.Raw
		}
	}
	if why == "" {
		why = strings.Join(reasons, ", ")
	}

	var out []byte
	for i, sg := range signers {
		der := kept[i]
		if der == nil || resignAll {
			sg.st.CRLNumber++
			thisUpdate := s.now.Add(-crlBackdate)
			var err error
			der, err = sg.ca.CreateCRLEntries(sg.st.entries(), big.NewInt(sg.st.CRLNumber), thisUpdate, s.now.Add(s.p.o.crlValidity))
			if err != nil {
				return fmt.Errorf("sign the CRL of %s: %w", sg.ca.Cert.Subject.CommonName, err)
			}
		}
		out = append(out, pki.EncodeCRLPEM(der)...)
	}

	stateData, err := cas.st.marshal()
	if err != nil {
		return err
	}
	if err := s.ensureContent(stateRel, stateData, 0o600); err != nil {
		return err
	}
	if err := s.ensureIntermediates(cas); err != nil {
		return err
	}
	current, err := os.ReadFile(s.path(CRLFile))
	if err == nil && bytes.Equal(current, out) {
		s.keep(CRLFile, "")
		return nil
	}
	if why == "" {
		why = "rewritten"
	}
	return s.write(CRLFile, out, 0o644, why)
}

// readCRLs returns the CRLs in crl.pem, or why there are none: "new" if the file does
// not exist, "unreadable" if it does not parse (it is then rewritten from the state).
func (s *session) readCRLs() (crls []*x509.RevocationList, problem string) {
	data, err := os.ReadFile(s.path(CRLFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "new"
	}
	if err != nil {
		return nil, "unreadable"
	}
	if crls, err = pki.ParseCRLs(data); err != nil {
		return nil, "unreadable"
	}
	return crls, ""
}

// findCRL returns the CRL in crls that ca issued and signed, or nil.
func findCRL(crls []*x509.RevocationList, ca *x509.Certificate) *x509.RevocationList {
	for _, crl := range crls {
		if bytes.Equal(crl.RawIssuer, ca.RawSubject) && crl.CheckSignatureFrom(ca) == nil {
			return crl
		}
	}
	return nil
}

// crlDue reports whether less than half of the CRL's validity remains.
func crlDue(crl *x509.RevocationList, now time.Time) bool {
	if crl.NextUpdate.IsZero() || now.Before(crl.ThisUpdate) {
		return true
	}
	return crl.NextUpdate.Sub(now) < crl.NextUpdate.Sub(crl.ThisUpdate)/2
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
