package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
)

func (a *app) ledgerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Follow the ledger (accounts service)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(a.watchCommand())
	return cmd
}

func (a *app) watchCommand() *cobra.Command {
	var (
		after int64
		limit int
		dur   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Stream ledger entries as they commit, until Ctrl-C (auditor)",
		Long: `watch streams every ledger entry after --after-sequence, then each new entry as it
commits, until Ctrl-C, --limit entries or --for elapses; each of those ends it with exit
code 0. --timeout does not apply to the stream. With --output json it prints one JSON
object per entry and line.`,
		Example: `  bankctl --as auditor ledger watch
  bankctl --as auditor ledger watch --after-sequence 100 --limit 10
  bankctl --as auditor -o json ledger watch --for 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 || dur < 0 {
				return usageFailure(errors.New("--limit and --for must not be negative"))
			}
			return a.watch(cmd.Context(), after, limit, dur)
		},
	}
	cmd.Flags().Int64Var(&after, "after-sequence", 0, "stream entries with a greater sequence number (0: the whole ledger)")
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many entries (0: no limit)")
	cmd.Flags().DurationVar(&dur, "for", 0, "stop after this long (0: until Ctrl-C)")
	return cmd
}

func (a *app) watch(parent context.Context, after int64, limit int, dur time.Duration) error {
	s, err := a.dial(parent, serviceAccounts)
	if err != nil {
		return err
	}
	defer s.Close()

	// stop ends the watch on purpose (Ctrl-C, --for, --limit); an error after it is not a failure.
	// --for cancels rather than setting a deadline: a deadline travels to the server, which
	// may end the stream a moment before this side's context notices, and that must not
	// read as a failure.
	stop, cancel := context.WithCancel(parent)
	defer cancel()
	if dur > 0 {
		timer := time.AfterFunc(dur, cancel)
		defer timer.Stop()
	}
	method := accountsv1.AccountsService_WatchLedger_FullMethodName
	stream, err := accountsv1.NewAccountsServiceClient(s.cc).WatchLedger(s.withMetadata(stop), &accountsv1.WatchLedgerRequest{AfterSequence: after})
	if err != nil {
		if stop.Err() != nil {
			return nil
		}
		return s.fail(stop, method, err)
	}
	if !a.json() {
		ledgerHeader(a.stdout)
	}
	for n := 0; limit == 0 || n < limit; n++ {
		resp, err := stream.Recv()
		if err != nil {
			if stop.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				a.note("the accounts service ended the stream")
				return nil
			}
			return s.fail(stop, method, err)
		}
		if err := a.printEntry(resp.GetEntry()); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) printEntry(e *accountsv1.LedgerEntry) error {
	if !a.json() {
		ledgerLine(a.stdout, e)
		return nil
	}
	b, err := jsonOptions(false).Marshal(e)
	if err != nil {
		return localFailure(fmt.Errorf("encode a ledger entry as JSON: %w", err))
	}
	if _, err := fmt.Fprintln(a.stdout, string(b)); err != nil {
		return localFailure(fmt.Errorf("write output: %w", err))
	}
	return nil
}
