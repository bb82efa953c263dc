package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
)

func (a *app) accountsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "Open, read and list accounts; deposit, withdraw and transfer (accounts service)",
		Long: `The accounts commands call bank.accounts.v1.AccountsService, by default at
localhost:50051 (--accounts-addr or --addr to change it).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(
		a.accountsOpenCommand(),
		a.accountsGetCommand(),
		a.accountsListCommand(),
		a.depositCommand(),
		a.withdrawCommand(),
		a.transferCommand(),
	)
	return cmd
}

func (a *app) accountsOpenCommand() *cobra.Command {
	req := &accountsv1.OpenAccountRequest{}
	cmd := &cobra.Command{
		Use:   "open",
		Short: "Open an empty account (teller)",
		Example: `  bankctl --as teller accounts open --owner spiffe://bank.local/customer/alice --currency EUR --display-name "Alice current"
  bankctl --as teller -o json accounts open --owner spiffe://bank.local/customer/bob`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := unary(a, cmd, serviceAccounts, accountsv1.AccountsService_OpenAccount_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*accountsv1.OpenAccountResponse, error) {
					return accountsv1.NewAccountsServiceClient(cc).OpenAccount(ctx, req)
				})
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) { accountsTable(w, resp.GetAccount()) })
		},
	}
	cmd.Flags().StringVar(&req.Owner, "owner", "", "owner's SPIFFE ID, such as spiffe://bank.local/customer/alice (required)")
	cmd.Flags().StringVar(&req.Currency, "currency", "EUR", "ISO 4217 currency of the account")
	cmd.Flags().StringVar(&req.DisplayName, "display-name", "", "a name for people, at most 100 characters")
	_ = cmd.MarkFlagRequired("owner")
	return cmd
}

func (a *app) accountsGetCommand() *cobra.Command {
	req := &accountsv1.GetAccountRequest{}
	cmd := &cobra.Command{
		Use:     "get",
		Short:   "Show one account and its balance (teller, auditor; customers their own)",
		Example: `  bankctl --as alice accounts get --id acc_123`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := unary(a, cmd, serviceAccounts, accountsv1.AccountsService_GetAccount_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*accountsv1.GetAccountResponse, error) {
					return accountsv1.NewAccountsServiceClient(cc).GetAccount(ctx, req)
				})
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) { accountsTable(w, resp.GetAccount()) })
		},
	}
	cmd.Flags().StringVar(&req.Id, "id", "", "account id (required)")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func (a *app) accountsListCommand() *cobra.Command {
	req := &accountsv1.ListAccountsRequest{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List accounts, one page at a time (teller, auditor; customers their own)",
		Example: `  bankctl --as alice accounts list
  bankctl --as teller accounts list --owner spiffe://bank.local/customer/bob --page-size 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := unary(a, cmd, serviceAccounts, accountsv1.AccountsService_ListAccounts_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*accountsv1.ListAccountsResponse, error) {
					return accountsv1.NewAccountsServiceClient(cc).ListAccounts(ctx, req)
				})
			if err != nil {
				return err
			}
			if next := resp.GetNextPageToken(); next != "" {
				a.note("more accounts: add --page-token %s", next)
			}
			return a.emit(resp, func(w io.Writer) { accountsTable(w, resp.GetAccounts()...) })
		},
	}
	cmd.Flags().StringVar(&req.Owner, "owner", "", "only accounts of this owner's SPIFFE ID")
	cmd.Flags().Int32Var(&req.PageSize, "page-size", 0, "at most this many accounts (default: the server's, 50)")
	cmd.Flags().StringVar(&req.PageToken, "page-token", "", "token printed by the previous page")
	return cmd
}

func (a *app) depositCommand() *cobra.Command {
	var (
		m         moneyFlags
		accountID string
		reference string
	)
	cmd := &cobra.Command{
		Use:   "deposit",
		Short: "Credit an account with money from outside the bank (teller)",
		Example: `  bankctl --as teller accounts deposit --account-id acc_123 --amount 25.00
  bankctl --as teller accounts deposit --account-id acc_123 --amount 25.00 --idempotency-key salary-2024-05`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			amount, err := m.money()
			if err != nil {
				return err
			}
			req := &accountsv1.DepositRequest{AccountId: accountID, Amount: amount, IdempotencyKey: a.idempotencyKey(m.idempotencyKey), Reference: reference}
			resp, err := unary(a, cmd, serviceAccounts, accountsv1.AccountsService_Deposit_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*accountsv1.DepositResponse, error) {
					return accountsv1.NewAccountsServiceClient(cc).Deposit(ctx, req)
				})
			if err != nil {
				return err
			}
			a.replayed(resp.GetReplayed())
			return a.emit(resp, func(w io.Writer) { transactionTable(w, resp.GetTransaction()) })
		},
	}
	cmd.Flags().StringVar(&accountID, "account-id", "", "account to credit (required)")
	cmd.Flags().StringVar(&reference, "reference", "", "free text, at most 200 characters")
	m.register(cmd)
	_ = cmd.MarkFlagRequired("account-id")
	return cmd
}

func (a *app) withdrawCommand() *cobra.Command {
	var (
		m         moneyFlags
		accountID string
		reference string
	)
	cmd := &cobra.Command{
		Use:     "withdraw",
		Short:   "Debit an account with money leaving the bank (teller)",
		Example: `  bankctl --as teller accounts withdraw --account-id acc_123 --amount 10.00 --reference "cash"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			amount, err := m.money()
			if err != nil {
				return err
			}
			req := &accountsv1.WithdrawRequest{AccountId: accountID, Amount: amount, IdempotencyKey: a.idempotencyKey(m.idempotencyKey), Reference: reference}
			resp, err := unary(a, cmd, serviceAccounts, accountsv1.AccountsService_Withdraw_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*accountsv1.WithdrawResponse, error) {
					return accountsv1.NewAccountsServiceClient(cc).Withdraw(ctx, req)
				})
			if err != nil {
				return err
			}
			a.replayed(resp.GetReplayed())
			return a.emit(resp, func(w io.Writer) { transactionTable(w, resp.GetTransaction()) })
		},
	}
	cmd.Flags().StringVar(&accountID, "account-id", "", "account to debit (required)")
	cmd.Flags().StringVar(&reference, "reference", "", "free text, at most 200 characters")
	m.register(cmd)
	_ = cmd.MarkFlagRequired("account-id")
	return cmd
}

func (a *app) transferCommand() *cobra.Command {
	var (
		m         moneyFlags
		from, to  string
		reference string
	)
	cmd := &cobra.Command{
		Use:   "transfer",
		Short: "Move money between two accounts (the payments service, on behalf of a user)",
		Long: `transfer calls AccountsService/Transfer directly. The demo policy grants it only to the
payments service, which names the end user with --on-behalf-of; people pay with
'bankctl payments create'.`,
		Example: `  bankctl --as payments --on-behalf-of spiffe://bank.local/customer/alice accounts transfer \
      --from-account-id acc_123 --to-account-id acc_456 --amount 5.00`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			amount, err := m.money()
			if err != nil {
				return err
			}
			req := &accountsv1.TransferRequest{FromAccountId: from, ToAccountId: to, Amount: amount, IdempotencyKey: a.idempotencyKey(m.idempotencyKey), Reference: reference}
			resp, err := unary(a, cmd, serviceAccounts, accountsv1.AccountsService_Transfer_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*accountsv1.TransferResponse, error) {
					return accountsv1.NewAccountsServiceClient(cc).Transfer(ctx, req)
				})
			if err != nil {
				return err
			}
			a.replayed(resp.GetReplayed())
			return a.emit(resp, func(w io.Writer) { transactionTable(w, resp.GetTransaction()) })
		},
	}
	cmd.Flags().StringVar(&from, "from-account-id", "", "account to debit (required)")
	cmd.Flags().StringVar(&to, "to-account-id", "", "account to credit (required)")
	cmd.Flags().StringVar(&reference, "reference", "", "free text, at most 200 characters")
	m.register(cmd)
	_ = cmd.MarkFlagRequired("from-account-id")
	_ = cmd.MarkFlagRequired("to-account-id")
	return cmd
}

// replayed tells the person that a retry was recognised and moved nothing.
func (a *app) replayed(r bool) {
	if r {
		a.note("replayed: this idempotency key was used before; this is the original result and no money moved now")
	}
}
