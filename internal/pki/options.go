package pki

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Default lifetimes, used when neither WithTTL nor WithValidity is given.
const (
	DefaultCATTL   = 10 * 365 * 24 * time.Hour
	DefaultLeafTTL = 30 * 24 * time.Hour
)

// backdate is how far before "now" a certificate made with a TTL starts, so that a
// peer whose clock runs slightly behind still accepts it.
const backdate = time.Minute

// ErrBadValidity is returned for an empty or inverted validity window.
var ErrBadValidity = errors.New("bad validity window")

// Option adjusts how NewRootCA, (*CA).NewIntermediate, (*CA).Issue and SelfSigned make
// a certificate.
type Option func(*options)

type options struct {
	keyType   KeyType
	ttl       time.Duration
	notBefore time.Time // explicit window; used when ttl == 0
	notAfter  time.Time
	serial    *big.Int
	clock     func() time.Time
	keyUsage  *x509.KeyUsage // replaces the profile's key usage (bad fixtures)
}

// newOptions applies opts over the defaults; ttl is the default lifetime for the kind
// of certificate being made. This is the one place defaults are set.
func newOptions(ttl time.Duration, opts []Option) options {
	o := options{keyType: ECDSAP256, ttl: ttl, clock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithKeyType selects the key algorithm of the new certificate (default ECDSAP256).
func WithKeyType(kt KeyType) Option { return func(o *options) { o.keyType = kt } }

// WithValidity sets an exact validity window, which may lie in the past or the future
// (expired and not-yet-valid fixtures). The last of WithValidity and WithTTL wins.
func WithValidity(notBefore, notAfter time.Time) Option {
	return func(o *options) { o.ttl, o.notBefore, o.notAfter = 0, notBefore, notAfter }
}

// WithTTL makes the certificate valid from one minute before now (per WithClock) for d.
// The last of WithValidity and WithTTL wins.
func WithTTL(d time.Duration) Option {
	return func(o *options) { o.ttl, o.notBefore, o.notAfter = d, time.Time{}, time.Time{} }
}

// WithSerial sets the serial number instead of a random 128-bit one.
func WithSerial(serial *big.Int) Option { return func(o *options) { o.serial = serial } }

// WithKeyUsage replaces the Key Usage the profile would set, so that tests can make the
// leaves the SPIFFE X.509-SVID rules forbid: one without digitalSignature, or one with
// keyCertSign or cRLSign. 0 leaves the extension out. Never use it for a real certificate.
func WithKeyUsage(ku x509.KeyUsage) Option { return func(o *options) { o.keyUsage = &ku } }

// WithClock sets the source of "now" used by WithTTL and the default lifetime.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// validity resolves the certificate window.
func (o options) validity() (notBefore, notAfter time.Time, err error) {
	if o.ttl < 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: negative TTL %s", ErrBadValidity, o.ttl)
	}
	if o.ttl > 0 {
		now := o.clock()
		notBefore, notAfter = now.Add(-backdate), now.Add(o.ttl)
	} else {
		notBefore, notAfter = o.notBefore, o.notAfter
	}
	if !notAfter.After(notBefore) {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: not after %s is not later than not before %s",
			ErrBadValidity, notAfter.Format(time.RFC3339), notBefore.Format(time.RFC3339))
	}
	return notBefore, notAfter, nil
}

// serialNumber returns the explicit serial or a fresh random positive 128-bit one.
func (o options) serialNumber() (*big.Int, error) {
	if o.serial != nil {
		if o.serial.Sign() <= 0 {
			return nil, fmt.Errorf("serial number %s must be positive", o.serial)
		}
		return new(big.Int).Set(o.serial), nil
	}
	return RandomSerial()
}

// RandomSerial returns a random positive serial number of up to 128 bits.
func RandomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("random serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
