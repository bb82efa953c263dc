package pki

import (
	"encoding/hex"
	"math/big"
	"strings"
)

// SerialHex formats a certificate serial number the way `openssl x509 -noout -serial`
// and nginx's $ssl_client_serial print it: upper-case hex of whole bytes, so an odd
// number of digits gets a leading 0 (0x0ABC prints "0ABC", zero prints "00"), no colons
// and no 0x; a negative serial (which Go refuses to parse, but a CRL entry may carry)
// prints as "-" and its magnitude. It is the one format the bank prints serials in
// (WhoAmI, logs, audit records, metrics labels, bankctl and certgen), so that a serial
// can be matched across tools. A nil serial prints as the empty string. Stored serials
// keep the form they were written in; this is for what people and tools read.
func SerialHex(serial *big.Int) string {
	if serial == nil {
		return ""
	}
	b := serial.Bytes() // magnitude, big-endian, no leading zero byte
	if len(b) == 0 {
		b = []byte{0}
	}
	out := strings.ToUpper(hex.EncodeToString(b))
	if serial.Sign() < 0 {
		return "-" + out
	}
	return out
}
