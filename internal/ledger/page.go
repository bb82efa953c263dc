package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Page sizes of ListAccounts.
const (
	// DefaultPageSize is the page size when the request gives none.
	DefaultPageSize = 50
	// MaxPageSize is the largest page; larger requests are cut to it.
	MaxPageSize = 500
)

// ListAccountsRequest asks for a page of customer accounts, ordered by id.
type ListAccountsRequest struct {
	// Owner keeps only the accounts of this SPIFFE ID, if not empty.
	Owner string
	// PageSize is the maximum number of accounts: 0 means DefaultPageSize,
	// more than MaxPageSize means MaxPageSize.
	PageSize int
	// PageToken continues a previous listing with the same Owner.
	PageToken string
}

// AccountPage is one page of a listing.
type AccountPage struct {
	// Accounts are ordered by id.
	Accounts []Account
	// NextPageToken fetches the next page; empty on the last one.
	NextPageToken string
}

// ListAccounts returns a page of customer accounts. System accounts are
// never listed.
func (l *Ledger) ListAccounts(ctx context.Context, req ListAccountsRequest) (AccountPage, error) {
	if req.Owner != "" {
		if err := l.checkSPIFFEID("owner", req.Owner); err != nil {
			return AccountPage{}, err
		}
	}
	size, err := pageSize(req.PageSize, DefaultPageSize, MaxPageSize)
	if err != nil {
		return AccountPage{}, err
	}
	var after AccountID
	if req.PageToken != "" {
		var err error
		if after, err = decodePageToken(req.PageToken, req.Owner); err != nil {
			return AccountPage{}, err
		}
	}

	var page AccountPage
	err = l.store.View(ctx, func(tx ReadTx) error {
		// One more than asked tells whether there is a next page.
		accts, err := tx.Accounts(ctx, AccountQuery{Owner: req.Owner, After: after, Limit: size + 1})
		if err != nil {
			return fmt.Errorf("ledger: list accounts: %w", err)
		}
		if len(accts) > size {
			accts = accts[:size]
			page.NextPageToken = encodePageToken(accts[size-1].ID, req.Owner)
		}
		page.Accounts = accts
		return nil
	})
	return page, err
}

// pageSize is the page size a request asks for: 0 is def, more than max is max,
// a negative one is refused.
func pageSize(asked, def, max int) (int, error) {
	switch {
	case asked < 0:
		return 0, fieldError("page_size", ErrInvalidPageSize, "%d", asked)
	case asked == 0:
		return def, nil
	case asked > max:
		return max, nil
	}
	return asked, nil
}

// A page token is base64url("a1." + last id + "." + owner digest). The
// digest binds the token to the owner filter, so a token cannot continue a
// different listing. It is opaque to clients but not secret: it only names
// an account id the caller has already seen.
const pageTokenVersion = "a1"

func ownerDigest(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return hex.EncodeToString(sum[:8])
}

func encodePageToken(last AccountID, owner string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenVersion + "." + string(last) + "." + ownerDigest(owner)))
}

func decodePageToken(token, owner string) (AccountID, error) {
	bad := func(why string) error {
		return &Error{Field: "page_token", Err: ErrInvalidPageToken, Detail: why}
	}
	if len(token) > 200 {
		return "", bad("too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", bad("not base64url")
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 || parts[0] != pageTokenVersion {
		return "", bad("not a page token")
	}
	id, err := ParseAccountID(parts[1])
	if err != nil {
		return "", bad("not a page token")
	}
	if parts[2] != ownerDigest(owner) {
		return "", bad("issued for a different owner filter")
	}
	return id, nil
}
