package devpki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"mtlsbank/internal/pki"
)

// Defaults and fixed names of the dev PKI.
const (
	TrustDomain        = "bank.local"
	DefaultDir         = "certs/dev"
	DefaultP12Password = "changeit"
	DefaultLeafTTL     = 30 * 24 * time.Hour
	DefaultCATTL       = 10 * 365 * 24 * time.Hour
	// DefaultCRLValidity is how long a CRL is valid (thisUpdate to nextUpdate); it is
	// re-signed once less than half of that remains (`certgen crl`).
	DefaultCRLValidity = 3 * 24 * time.Hour

	BundleFile        = "ca.crt"            // trust anchors: the root CA only
	IntermediatesFile = "intermediates.crt" // chain material: every intermediate in use
	CRLFile           = "crl.pem"           // one CRL per CA: the root's, then each intermediate's
	RogueCAFile       = "rogue-ca.crt"      // the CA that signed the rogue leaf; trusted by nobody
	CADir             = "ca"                // CA private material and state (mode 0700)
)

// Files inside CADir. Intermediates made by Rollover are intermediate-N.crt/.key.
const (
	rootName        = "root"
	rootCertFile    = "root.crt"
	rootKeyFile     = "root.key"
	interCertFile   = "intermediate.crt"
	interKeyFile    = "intermediate.key"
	stateFile       = "state.json"
	rogueCAKeyFile  = "rogue-ca.key"
	rootCommonName  = "mtlsbank Dev Root CA"
	interCommonName = "mtlsbank Dev Intermediate CA"
	rogueCommonName = "mtlsbank Rogue Root CA"
)

// stateRel is the state file relative to the PKI directory.
var stateRel = filepath.Join(CADir, stateFile)

// Errors returned by this package.
var (
	ErrNoCA             = errors.New("no dev CA (run `certgen init` first)")
	ErrBrokenCA         = errors.New("dev CA files are incomplete or unreadable (fix them, or start over with --force)")
	ErrBadCRL           = errors.New("existing CRL is unreadable or not signed by the dev intermediate (fix or delete it, or start over with --force)")
	ErrBadState         = errors.New("certgen state " + CADir + "/" + stateFile + " is unreadable or inconsistent (fix it, or start over with --force)")
	ErrUnknownCA        = errors.New("unknown CA")
	ErrRevokeRoot       = errors.New("the root cannot be revoked: its own CRL cannot list it (start over with --force)")
	ErrRevokeIssuing    = errors.New("the issuing intermediate cannot be revoked: run `certgen rollover` first, so that another one issues")
	ErrBadName          = errors.New("bad certificate name")
	ErrSPIFFEIDRequired = errors.New("a new name needs a SPIFFE ID")
	ErrBadSPIFFEID      = errors.New("bad SPIFFE ID")
	ErrNotInTrustDomain = errors.New("SPIFFE ID is not in trust domain " + TrustDomain)
	ErrProfileSPIFFEID  = errors.New("a built-in name keeps its own SPIFFE ID")
	ErrNotBankIssued    = errors.New("certificate was not issued by the dev intermediate CA")
)

// Option configures a PKI.
type Option func(*options)

type options struct {
	keyType     pki.KeyType
	p12Password string
	p12Full     bool
	leafTTL     time.Duration
	caTTL       time.Duration
	crlValidity time.Duration
	clock       func() time.Time
	force       bool
}

// defaultOptions is the one place the defaults are set.
func defaultOptions() options {
	return options{
		keyType:     pki.ECDSAP256,
		p12Password: DefaultP12Password,
		leafTTL:     DefaultLeafTTL,
		caTTL:       DefaultCATTL,
		crlValidity: DefaultCRLValidity,
		clock:       time.Now,
	}
}

// WithKeyType sets the key type of new CAs and leaves (default ECDSA P-256). On Init,
// kept leaves of another key type are reissued; existing CAs are kept.
func WithKeyType(kt pki.KeyType) Option { return func(o *options) { o.keyType = kt } }

// WithP12Password sets the password of the NAME.p12 files (default "changeit").
func WithP12Password(pw string) Option { return func(o *options) { o.p12Password = pw } }

// WithP12FullChain makes every NAME.p12 hold the whole chain, root CA included, for
// Java and .NET stores that want the anchor beside the key (default: leaf and
// intermediates only, as in NAME.crt). Existing .p12 files that hold another set of
// CA certificates are rewritten once.
func WithP12FullChain(full bool) Option { return func(o *options) { o.p12Full = full } }

// WithLeafTTL sets the lifetime of leaves (default 30 days).
func WithLeafTTL(d time.Duration) Option { return func(o *options) { o.leafTTL = d } }

// WithCATTL sets the lifetime of new CAs (default 10 years).
func WithCATTL(d time.Duration) Option { return func(o *options) { o.caTTL = d } }

// WithCRLValidity sets how long the CRLs certgen signs are valid, thisUpdate to
// nextUpdate (default DefaultCRLValidity).
func WithCRLValidity(d time.Duration) Option { return func(o *options) { o.crlValidity = d } }

// WithClock sets the source of "now" (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithForce makes Init start over: new CAs, every leaf reissued, fresh CRLs, the
// intermediates of earlier rollovers removed. Leaves that Issue made under other names
// are left alone (they no longer verify). For RefreshCRLs it re-signs every CRL even
// if none is due.
func WithForce(force bool) Option { return func(o *options) { o.force = force } }

// PKI is a dev PKI directory.
type PKI struct {
	dir string
	o   options
}

// New returns the dev PKI rooted at dir (DefaultDir if empty). Nothing is read or
// written until Init, Issue or Revoke.
func New(dir string, opts ...Option) (*PKI, error) {
	if dir == "" {
		dir = DefaultDir
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := pki.ParseKeyType(string(o.keyType)); err != nil {
		return nil, err
	}
	if o.leafTTL <= 0 || o.caTTL <= 0 || o.crlValidity < 2*crlBackdate {
		return nil, fmt.Errorf("%w: TTLs must be positive and a CRL valid for at least %s (leaf %s, CA %s, CRL %s)",
			pki.ErrBadValidity, 2*crlBackdate, o.leafTTL, o.caTTL, o.crlValidity)
	}
	return &PKI{dir: dir, o: o}, nil
}

// Dir is the directory the PKI lives in.
func (p *PKI) Dir() string { return p.dir }

// Action says what happened to a file.
type Action string

// Actions.
const (
	Wrote   Action = "wrote"
	Kept    Action = "kept"
	Removed Action = "removed"
)

// FileResult reports one file that Init, Issue or Revoke wrote or kept.
type FileResult struct {
	Path   string
	Action Action
	Reason string // why it was written (or a note on a kept file); may be empty
}

// String formats the result as one line, e.g. "wrote certs/dev/alice.crt (new)".
func (r FileResult) String() string {
	s := fmt.Sprintf("%-5s %s", r.Action, r.Path)
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	return s
}

// session is one operation: a fixed "now", the lock on CADir, and the files it touched.
type session struct {
	p       *PKI
	now     time.Time
	results []FileResult
	unlock  func()
}

// lock takes the PKI's lock (an flock on CADir) if CADir exists and it is not held yet.
func (s *session) lock() error {
	if s.unlock != nil {
		return nil
	}
	unlock, err := lockDir(s.path(CADir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	s.unlock = unlock
	return nil
}

// done releases the lock.
func (s *session) done() {
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
}

func (p *PKI) newSession() *session { return &session{p: p, now: p.o.clock()} }

func (s *session) path(rel string) string { return filepath.Join(s.p.dir, rel) }

func (s *session) write(rel string, data []byte, perm os.FileMode, reason string) error {
	if err := pki.WriteFileAtomic(s.path(rel), data, perm); err != nil {
		return err
	}
	s.results = append(s.results, FileResult{Path: s.path(rel), Action: Wrote, Reason: reason})
	return nil
}

// remove deletes rel, which must exist.
func (s *session) remove(rel, reason string) error {
	if err := os.Remove(s.path(rel)); err != nil {
		return err
	}
	s.results = append(s.results, FileResult{Path: s.path(rel), Action: Removed, Reason: reason})
	return nil
}

func (s *session) keep(rel, note string) {
	s.results = append(s.results, FileResult{Path: s.path(rel), Action: Kept, Reason: note})
}

// ensureDirs creates the directory and CADir, and makes CADir private.
func (s *session) ensureDirs() error {
	if err := os.MkdirAll(s.p.dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", s.p.dir, err)
	}
	if err := os.MkdirAll(s.path(CADir), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", s.path(CADir), err)
	}
	if err := os.Chmod(s.path(CADir), 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", s.path(CADir), err)
	}
	return nil
}

// leafOpts are the pki options for a leaf valid for ttl from now.
func (s *session) leafOpts(extra ...pki.Option) []pki.Option {
	return append([]pki.Option{pki.WithKeyType(s.p.o.keyType), pki.WithClock(func() time.Time { return s.now })}, extra...)
}
