package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/money"
)

// jsonOptions print field names as in the .proto files (the names DESIGN.md uses) and
// every field, zero or not, so that scripts need not know the proto3 defaults.
func jsonOptions(multiline bool) protojson.MarshalOptions {
	o := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	if multiline {
		o.Multiline, o.Indent = true, "  "
	}
	return o
}

// emit prints a response: as one JSON document (--output json) or through table, which
// writes tab-separated rows that are aligned on flush.
func (a *app) emit(m proto.Message, table func(w io.Writer)) error {
	if a.json() {
		b, err := jsonOptions(true).Marshal(m)
		if err != nil {
			return localFailure(fmt.Errorf("encode the response as JSON: %w", err))
		}
		if _, err := fmt.Fprintln(a.stdout, string(b)); err != nil {
			return localFailure(fmt.Errorf("write output: %w", err))
		}
		return nil
	}
	tw := newTable(a.stdout)
	table(tw)
	if err := tw.Flush(); err != nil {
		return localFailure(fmt.Errorf("write output: %w", err))
	}
	return nil
}

// note prints a remark for the person on stderr, so that stdout stays data.
func (a *app) note(format string, args ...any) {
	fmt.Fprintf(a.stderr, format+"\n", args...)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes one tab-separated row.
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// formatMoney writes an amount as "25.00 EUR".
func formatMoney(m *typev1.Money) string {
	if m == nil {
		return ""
	}
	return money.Format(m.GetMinorUnits(), m.GetCurrencyCode())
}

// formatChange writes a signed amount with its sign: "+25.00 EUR", "-5.00 EUR".
func formatChange(m *typev1.Money) string {
	s := formatMoney(m)
	if m != nil && m.GetMinorUnits() > 0 {
		return "+" + s
	}
	return s
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04:05Z")
}

// enumName turns PAYMENT_STATUS_COMPLETED into "completed".
func enumName(full, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(full, prefix))
}

func accountsTable(w io.Writer, accounts ...*accountsv1.Account) {
	row(w, "ID", "OWNER", "BALANCE", "DISPLAY NAME", "OPENED")
	for _, acc := range accounts {
		row(w, acc.GetId(), acc.GetOwner(), formatMoney(acc.GetBalance()), acc.GetDisplayName(), formatTime(acc.GetCreateTime()))
	}
}

func transactionTable(w io.Writer, tx *accountsv1.Transaction) {
	row(w, "TRANSACTION", "KIND", "AMOUNT", "REFERENCE", "IDEMPOTENCY KEY", "BY", "ON BEHALF OF", "TIME")
	row(w, tx.GetId(), enumName(tx.GetKind().String(), "TRANSACTION_KIND_"), formatMoney(tx.GetAmount()), tx.GetReference(),
		tx.GetIdempotencyKey(), tx.GetPrincipal(), tx.GetOnBehalfOf(), formatTime(tx.GetCreateTime()))
	if len(tx.GetEntries()) == 0 {
		return
	}
	row(w)
	row(w, "SEQUENCE", "ACCOUNT", "CHANGE", "BALANCE AFTER")
	for _, e := range tx.GetEntries() {
		row(w, fmt.Sprint(e.GetSequence()), e.GetAccountId(), formatChange(e.GetAmount()), formatMoney(e.GetBalanceAfter()))
	}
}

func paymentsTable(w io.Writer, payments ...*paymentsv1.Payment) {
	row(w, "ID", "STATUS", "AMOUNT", "FROM", "TO", "TRANSACTION", "CREATED BY", "MEMO", "FAILURE")
	for _, p := range payments {
		row(w, p.GetId(), enumName(p.GetStatus().String(), "PAYMENT_STATUS_"), formatMoney(p.GetAmount()), p.GetFromAccountId(),
			p.GetToAccountId(), p.GetTransactionId(), p.GetCreatedBy(), p.GetMemo(), p.GetFailureReason())
	}
}

func whoamiTable(w io.Writer, service, addr string, r *identityv1.WhoAmIResponse) {
	roles := strings.Join(r.GetRoles(), ", ")
	if roles == "" {
		roles = "(none: the policy maps no role to this identity)"
	}
	row(w, "SERVICE", fmt.Sprintf("%s at %s", service, addr))
	row(w, "SPIFFE ID", r.GetSpiffeId())
	row(w, "ROLES", roles)
	row(w, "SUBJECT", r.GetSubject())
	row(w, "SERIAL", r.GetSerial())
	row(w, "NOT AFTER", formatTime(r.GetNotAfter()))
	row(w, "SHA-256", r.GetFingerprintSha256())
	if r.GetOnBehalfOf() != "" {
		row(w, "ON BEHALF OF", r.GetOnBehalfOf())
	}
}

// ledgerHeader and ledgerLine print a streamed entry as soon as it arrives; a tabwriter
// would hold the lines back until the end, so the columns have fixed widths.
const ledgerFormat = "%-9s %-30s %-30s %16s %16s  %s\n"

func ledgerHeader(w io.Writer) {
	fmt.Fprintf(w, ledgerFormat, "SEQUENCE", "TRANSACTION", "ACCOUNT", "CHANGE", "BALANCE AFTER", "TIME")
}

func ledgerLine(w io.Writer, e *accountsv1.LedgerEntry) {
	fmt.Fprintf(w, ledgerFormat, fmt.Sprint(e.GetSequence()), e.GetTransactionId(), e.GetAccountId(),
		formatChange(e.GetAmount()), formatMoney(e.GetBalanceAfter()), formatTime(e.GetCreateTime()))
}
