package payments

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// errPageToken means a page token was not made by this service.
var errPageToken = errors.New("malformed page token")

// pageTokenPrefix versions the token format, so that it can change without
// misreading tokens handed out before.
const pageTokenPrefix = "p1."

// encodePageToken returns an opaque token resuming after the payment with seq.
func encodePageToken(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatInt(seq, 10)))
}

// decodePageToken reads a token from encodePageToken; the empty token is the start.
func decodePageToken(token string) (int64, error) {
	if token == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, errPageToken
	}
	digits, ok := strings.CutPrefix(string(raw), pageTokenPrefix)
	if !ok {
		return 0, errPageToken
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || seq <= 0 || strconv.FormatInt(seq, 10) != digits {
		return 0, errPageToken
	}
	return seq, nil
}
