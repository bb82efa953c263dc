package ledger

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// AccountID identifies an account: "acc_" followed by 26 lower-case Crockford
// base32 characters that encode 128 random bits. Obtain one from the ledger
// or from ParseAccountID.
type AccountID string

// TransactionID identifies a transaction: "txn_" followed by 26 lower-case
// Crockford base32 characters that encode 128 bits, the first 48 the
// millisecond it was made and the other 80 random (newTransactionID).
type TransactionID string

const (
	accountPrefix     = "acc_"
	transactionPrefix = "txn_"
	// idBodyLen characters of 5 bits hold 128 bits with 2 to spare, so the
	// first character is at most '7'.
	idBodyLen = 26
	crockford = "0123456789abcdefghjkmnpqrstvwxyz"
)

// ParseAccountID validates s as an account id. The error wraps ErrMalformedID.
func ParseAccountID(s string) (AccountID, error) {
	if why := parseID(s, accountPrefix); why != "" {
		return "", fmt.Errorf("%w: %s", ErrMalformedID, why)
	}
	return AccountID(s), nil
}

// ParseTransactionID validates s as a transaction id. The error wraps
// ErrMalformedID.
func ParseTransactionID(s string) (TransactionID, error) {
	if why := parseID(s, transactionPrefix); why != "" {
		return "", fmt.Errorf("%w: %s", ErrMalformedID, why)
	}
	return TransactionID(s), nil
}

// String returns the id as text.
func (id AccountID) String() string { return string(id) }

// String returns the id as text.
func (id TransactionID) String() string { return string(id) }

func newAccountID() AccountID { return AccountID(newID(accountPrefix)) }

// newTransactionID returns an id whose first 48 bits are the milliseconds since
// the Unix epoch and whose other 80 bits are random: ids made later sort later,
// so the ledger's inserts by transaction id append to its indexes instead of
// dirtying a random page of each per transfer (which every commit then writes
// and syncs). 80 random bits keep ids unguessable; the time they reveal is the
// transaction's own creation time, which its readers see anyway.
func newTransactionID() TransactionID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return TransactionID(transactionPrefix + encodeID(b))
}

// newID encodes 128 bits from crypto/rand (which does not fail) after prefix.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + encodeID(b)
}

// encodeID writes 128 bits as 26 Crockford base32 characters, most
// significant first.
func encodeID(b [16]byte) string {
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	var out [idBodyLen]byte
	for i := idBodyLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// parseID returns why s is not an id with the prefix, or "" if it is one.
func parseID(s, prefix string) string {
	body, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return fmt.Sprintf("%q does not start with %q", clip(s), prefix)
	}
	if len(body) != idBodyLen {
		return fmt.Sprintf("%q does not have %d characters after %q", clip(s), idBodyLen, prefix)
	}
	for i := 0; i < len(body); i++ {
		v := crockfordValue[body[i]]
		if v < 0 {
			return fmt.Sprintf("%q has %q, which is not lower-case Crockford base32", clip(s), body[i])
		}
		if i == 0 && v > 7 {
			return fmt.Sprintf("%q exceeds 128 bits", clip(s))
		}
	}
	return ""
}

// crockfordValue maps a byte to its value in crockford, -1 if it is not one of its
// characters: parseID runs on every request that names an account (request validation
// too, internal/validation), and a table lookup per character is what makes that cheap.
var crockfordValue = func() (t [256]int8) {
	for i := range t {
		t[i] = int8(strings.IndexByte(crockford, byte(i)))
	}
	return t
}()

// clip shortens hostile input before it is quoted in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
