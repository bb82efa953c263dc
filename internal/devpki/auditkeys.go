package devpki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"mtlsbank/internal/auditlog"
)

// AuditKeyFile and AuditPubFile name a service's audit signing key (mode 0600) and its
// public key, which `bankctl audit verify` checks the service's audit trail with.
func AuditKeyFile(service string) string { return service + "-audit.key" }

// AuditPubFile is the public key of AuditKeyFile.
func AuditPubFile(service string) string { return service + "-audit.pub" }

// AuditKeyFiles lists the audit key files Init writes, relative to the PKI directory.
func AuditKeyFiles() []string {
	var files []string
	for _, pr := range profiles() {
		if pr.kind == kindServer {
			files = append(files, AuditKeyFile(pr.name), AuditPubFile(pr.name))
		}
	}
	return files
}

// ensureAuditKeys gives every service profile an audit key pair. An existing key is kept
// (tightened to 0600), --force included: the audit key is not part of the PKI, and a new
// one would not verify the checkpoints the old one signed. It is only created when
// missing; its public key is rewritten from it when it differs.
func (s *session) ensureAuditKeys() error {
	for _, pr := range profiles() {
		if pr.kind != kindServer {
			continue
		}
		keyRel, pubRel := AuditKeyFile(pr.name), AuditPubFile(pr.name)
		key, err := auditlog.LoadSigningKey(s.path(keyRel))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := auditlog.WriteKeyPair(s.path(keyRel), s.path(pubRel)); err != nil {
				return fmt.Errorf("%s: %w", keyRel, err)
			}
			s.results = append(s.results, FileResult{Path: s.path(keyRel), Action: Wrote, Reason: "new"},
				FileResult{Path: s.path(pubRel), Action: Wrote, Reason: "new"})
			continue
		case err != nil:
			// A readable key with a loose mode: tighten it, as for the TLS keys.
			if info, serr := os.Stat(s.path(keyRel)); serr == nil && info.Mode().Perm()&0o077 != 0 {
				if err := s.keepPrivate(keyRel); err != nil {
					return err
				}
				if key, err = auditlog.LoadSigningKey(s.path(keyRel)); err == nil {
					break
				}
			}
			return fmt.Errorf("%s: %w (delete it to make a new one: checkpoints it signed then no longer verify)", keyRel, err)
		default:
			if err := s.keepPrivate(keyRel); err != nil {
				return err
			}
		}
		pub, err := auditlog.EncodePublicKey(key.Public())
		if err != nil {
			return err
		}
		if err := s.ensureContent(pubRel, pub, 0o644); err != nil {
			return err
		}
	}
	return nil
}
