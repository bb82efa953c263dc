package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/reconcile"
)

const reconcileLong = `reconcile checks the payments service against the ledger, over their APIs, as the
auditor (--as auditor): it lists every payment (ListPayments), every ledger transaction
with its entries and idempotency key (ListTransactions) and every account (ListAccounts),
and checks that

  - every COMPLETED payment has exactly one ledger transaction under its transfer key
    (payment:ID), the one it names, moving its amount from its account to its account on
    behalf of its creator;
  - every transaction the payments service made is under the key of a COMPLETED payment;
  - every transaction balances, every entry's balance-after follows from the one before,
    and every account's balance is the sum of its entries.

It prints each difference (kind, subject, detail) and exits 1 if there is any, 0 if
there is none. Work in flight (a payment whose transfer just committed, a balance that
moved between two reads) looks like a difference for a moment: a difference is reported
only if every read over --settle shows it. The kinds: payment-without-transaction,
duplicate-transaction, transaction-id-mismatch, amount-mismatch, account-mismatch,
creator-mismatch, transaction-without-payment, transaction-of-unfinished-payment,
unbalanced-transaction, entry-chain-broken, balance-mismatch.

--accounts-addr and --payments-addr name the services (--addr and --server-spiffe-id,
which would name only one, are refused).`

func (a *app) reconcileCommand() *cobra.Command {
	var (
		settle     time.Duration
		paymentsID string
	)
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Check payments against the ledger; exit 1 on any difference (auditor)",
		Long:  reconcileLong,
		Example: `  bankctl --as auditor reconcile
  bankctl --as auditor -o json reconcile --settle 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.g.addr != "" || a.g.serverSPIFFEID != "" {
				return usageFailure(errors.New("reconcile calls both services: give --accounts-addr and --payments-addr, not --addr or --server-spiffe-id"))
			}
			if settle < 0 {
				return usageFailure(fmt.Errorf("--settle %s must not be negative", settle))
			}
			if _, err := parseServerID(paymentsID); err != nil {
				return usageFailure(fmt.Errorf("--payments-spiffe-id: %w", err))
			}
			return a.reconcile(cmd.Context(), paymentsID, settle)
		},
	}
	cmd.Flags().DurationVar(&settle, "settle", 10*time.Second, "how long a difference must persist to be reported (work in flight settles); 0 reports what one read shows")
	cmd.Flags().StringVar(&paymentsID, "payments-spiffe-id", paymentsServerID, "SPIFFE ID the payments service calls the ledger as")
	return cmd
}

func (a *app) reconcile(ctx context.Context, paymentsID string, settle time.Duration) error {
	acc, err := a.dial(ctx, serviceAccounts)
	if err != nil {
		return err
	}
	defer acc.Close()
	pay, err := a.dial(ctx, servicePayments)
	if err != nil {
		return err
	}
	defer pay.Close()
	src := &apiSource{accounts: acc, payments: pay}
	r, err := reconcile.Run(ctx, src, paymentsID, settle, time.Second)
	if err != nil {
		if ctx.Err() != nil {
			return &failure{diag: diagnosis{kind: KindInterrupted, line: "reconcile interrupted before it finished"}}
		}
		return src.failure(ctx, err)
	}
	if err := a.printReconcile(r); err != nil {
		return err
	}
	if n := len(r.Differences); n > 0 {
		return &failure{diag: diagnosis{kind: KindDifferences,
			line: fmt.Sprintf("%d difference(s) between the payments and the ledger", n)}}
	}
	return nil
}

func (a *app) printReconcile(r reconcile.Report) error {
	if a.json() {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r); err != nil {
			return localFailure(fmt.Errorf("write output: %w", err))
		}
		return nil
	}
	tw := newTable(a.stdout)
	if len(r.Differences) > 0 {
		row(tw, "KIND", "SUBJECT", "DETAIL")
		for _, d := range r.Differences {
			row(tw, d.Kind, d.Subject, d.Detail)
		}
	}
	if err := tw.Flush(); err != nil {
		return localFailure(fmt.Errorf("write output: %w", err))
	}
	verdict := "they agree"
	if n := len(r.Differences); n > 0 {
		verdict = fmt.Sprintf("%d difference(s)", n)
	}
	_, err := fmt.Fprintf(a.stdout, "reconciled %d payments (%d completed, %d failed, %d pending), %d ledger transactions, %d accounts: %s\n",
		r.Payments, r.Completed, r.Failed, r.Pending, r.Transactions, r.Accounts, verdict)
	if err != nil {
		return localFailure(fmt.Errorf("write output: %w", err))
	}
	return nil
}

// apiSource reads the services through their APIs, a page at a time.
type apiSource struct {
	accounts, payments *session
	// failed remembers which call failed, for the diagnosis.
	failedSession *session
	failedMethod  string
}

// Read implements reconcile.Source: payments first, then the ledger's
// transactions, then the accounts, so that every transfer of a payment seen
// COMPLETED is among the transactions.
func (s *apiSource) Read(ctx context.Context) (reconcile.Input, error) {
	var in reconcile.Input
	var err error
	payments := paymentsv1.NewPaymentsServiceClient(s.payments.cc)
	in.Payments, err = pages(ctx, s, s.payments, paymentsv1.PaymentsService_ListPayments_FullMethodName,
		func(ctx context.Context, token string) ([]*paymentsv1.Payment, string, error) {
			r, err := payments.ListPayments(ctx, &paymentsv1.ListPaymentsRequest{PageSize: 500, PageToken: token})
			return r.GetPayments(), r.GetNextPageToken(), err
		})
	if err != nil {
		return in, err
	}
	accounts := accountsv1.NewAccountsServiceClient(s.accounts.cc)
	in.Transactions, err = pages(ctx, s, s.accounts, accountsv1.AccountsService_ListTransactions_FullMethodName,
		func(ctx context.Context, token string) ([]*accountsv1.Transaction, string, error) {
			r, err := accounts.ListTransactions(ctx, &accountsv1.ListTransactionsRequest{PageSize: 1000, PageToken: token})
			return r.GetTransactions(), r.GetNextPageToken(), err
		})
	if err != nil {
		return in, err
	}
	in.Accounts, err = pages(ctx, s, s.accounts, accountsv1.AccountsService_ListAccounts_FullMethodName,
		func(ctx context.Context, token string) ([]*accountsv1.Account, string, error) {
			r, err := accounts.ListAccounts(ctx, &accountsv1.ListAccountsRequest{PageSize: 500, PageToken: token})
			return r.GetAccounts(), r.GetNextPageToken(), err
		})
	return in, err
}

// pages calls list until it returns no next page token, each call within --timeout.
func pages[T any](ctx context.Context, s *apiSource, sess *session, method string,
	list func(ctx context.Context, token string) ([]T, string, error)) ([]T, error) {
	var out []T
	token := ""
	for {
		callCtx, cancel := sess.callContext(ctx)
		items, next, err := list(callCtx, token)
		cancel()
		if err != nil {
			s.failedSession, s.failedMethod = sess, method
			return nil, err
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// failure diagnoses the error of a read.
func (s *apiSource) failure(ctx context.Context, err error) error {
	if s.failedSession == nil {
		return localFailure(err)
	}
	return s.failedSession.fail(ctx, s.failedMethod, err)
}
