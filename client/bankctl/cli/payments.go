package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	paymentsv1 "mtlsbank/gen/bank/payments/v1"
)

func (a *app) paymentsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "payments",
		Short: "Create, read and list payments (payments service)",
		Long: `The payments commands call bank.payments.v1.PaymentsService, by default at
localhost:50052 (--payments-addr or --addr to change it).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.paymentsCreateCommand(), a.paymentsGetCommand(), a.paymentsListCommand())
	return cmd
}

func (a *app) paymentsCreateCommand() *cobra.Command {
	var (
		m        moneyFlags
		from, to string
		memo     string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Pay from one account to another (customers from their own accounts, tellers from any)",
		Example: `  bankctl --as alice payments create --from-account-id acc_123 --to-account-id acc_456 --amount 12.50 --memo "lunch"
  bankctl --as alice payments create --from-account-id acc_123 --to-account-id acc_456 --amount 12.50 --idempotency-key lunch-0517`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			amount, err := m.money()
			if err != nil {
				return err
			}
			req := &paymentsv1.CreatePaymentRequest{FromAccountId: from, ToAccountId: to, Amount: amount, IdempotencyKey: a.idempotencyKey(m.idempotencyKey), Memo: memo}
			resp, err := unary(a, cmd, servicePayments, paymentsv1.PaymentsService_CreatePayment_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*paymentsv1.CreatePaymentResponse, error) {
					return paymentsv1.NewPaymentsServiceClient(cc).CreatePayment(ctx, req)
				})
			if err != nil {
				return err
			}
			a.replayed(resp.GetReplayed())
			return a.emit(resp, func(w io.Writer) { paymentsTable(w, resp.GetPayment()) })
		},
	}
	cmd.Flags().StringVar(&from, "from-account-id", "", "account to debit (required)")
	cmd.Flags().StringVar(&to, "to-account-id", "", "account to credit (required)")
	cmd.Flags().StringVar(&memo, "memo", "", "free text, at most 200 characters")
	m.register(cmd)
	_ = cmd.MarkFlagRequired("from-account-id")
	_ = cmd.MarkFlagRequired("to-account-id")
	return cmd
}

func (a *app) paymentsGetCommand() *cobra.Command {
	req := &paymentsv1.GetPaymentRequest{}
	cmd := &cobra.Command{
		Use:     "get",
		Short:   "Show one payment (teller, auditor; customers their own)",
		Example: `  bankctl --as alice payments get --id pay_123`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := unary(a, cmd, servicePayments, paymentsv1.PaymentsService_GetPayment_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*paymentsv1.GetPaymentResponse, error) {
					return paymentsv1.NewPaymentsServiceClient(cc).GetPayment(ctx, req)
				})
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) { paymentsTable(w, resp.GetPayment()) })
		},
	}
	cmd.Flags().StringVar(&req.Id, "id", "", "payment id (required)")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func (a *app) paymentsListCommand() *cobra.Command {
	req := &paymentsv1.ListPaymentsRequest{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List payments, one page at a time (teller, auditor; customers those they created)",
		Example: `  bankctl --as auditor payments list
  bankctl --as alice -o json payments list --page-size 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := unary(a, cmd, servicePayments, paymentsv1.PaymentsService_ListPayments_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*paymentsv1.ListPaymentsResponse, error) {
					return paymentsv1.NewPaymentsServiceClient(cc).ListPayments(ctx, req)
				})
			if err != nil {
				return err
			}
			if next := resp.GetNextPageToken(); next != "" {
				a.note("more payments: add --page-token %s", next)
			}
			return a.emit(resp, func(w io.Writer) { paymentsTable(w, resp.GetPayments()...) })
		},
	}
	cmd.Flags().Int32Var(&req.PageSize, "page-size", 0, "at most this many payments (default: the server's, 50)")
	cmd.Flags().StringVar(&req.PageToken, "page-token", "", "token printed by the previous page")
	return cmd
}
