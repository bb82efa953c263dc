package validation

import "mtlsbank/internal/refusal"

// rule is what the API makes of the violation of one protovalidate rule.
type rule struct {
	// reason is the ErrorInfo reason (package refusal).
	reason string
	// at is the field, below the one the rule is on, that a violation blames: a rule on
	// a message, or on a message field, that checks one field of it. "" blames the field
	// of the rule.
	at string
}

// reasons maps the id of every rule of the bank's protos (bank/type/v1/rules.proto and
// the field and message rules of the requests) to its refusal reason. A rule missing
// here is refused with the generic refusal.InvalidArgument; a test keeps it complete.
var reasons = map[string]rule{
	"required":             {reason: refusal.MissingField},
	"bank.account_id":      {reason: refusal.MalformedID},
	"bank.payment_id":      {reason: refusal.MalformedID},
	"bank.spiffe_id":       {reason: refusal.InvalidOwner},
	"bank.currency_code":   {reason: refusal.UnknownCurrency},
	"bank.text":            {reason: refusal.InvalidText},
	"bank.text_chars":      {reason: refusal.InvalidText},
	"bank.idempotency_key": {reason: refusal.InvalidIdempotencyKey},
	"bank.page_token":      {reason: refusal.InvalidPageToken},
	"bank.page_size":       {reason: refusal.InvalidPageSize},
	"bank.sequence":        {reason: refusal.InvalidSequence},
	"bank.amount.positive": {reason: refusal.InvalidAmount, at: "minor_units"},
	"bank.amount.max":      {reason: refusal.AmountTooLarge, at: "minor_units"},
	"bank.self_transfer":   {reason: refusal.SelfTransfer, at: "to_account_id"},
}
