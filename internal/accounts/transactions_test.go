package accounts_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
)

// TestListTransactions: the auditor lists the ledger with each transaction's key
// and principal, and a policy that hands ListTransactions to customers (scope own)
// by mistake still shows them nothing of the ledger.
func TestListTransactions(t *testing.T) {
	policy, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	grant := []byte("      - /bank.accounts.v1.AccountsService/ListAccounts\n    on_behalf:\n      scope: own")
	if !bytes.Contains(policy, grant) {
		t.Fatal("the customer role of the policy changed shape")
	}
	careless := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(careless, bytes.Replace(policy, grant,
		[]byte("      - /bank.accounts.v1.AccountsService/ListAccounts\n      - /bank.accounts.v1.AccountsService/ListTransactions\n    on_behalf:\n      scope: own"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvWithPolicy(t, careless)
	teller := e.client(t, "spiffe://bank.local/teller/tina")
	a := openAccount(t, teller, "spiffe://bank.local/customer/alice", "EUR")
	deposit(t, teller, a, 500, "first")
	deposit(t, teller, a, 700, "second")

	resp, err := e.client(t, "spiffe://bank.local/auditor/audrey").ListTransactions(callCtx(t), &accountsv1.ListTransactionsRequest{})
	if err != nil {
		t.Fatalf("auditor: %v", err)
	}
	if n := len(resp.GetTransactions()); n != 2 {
		t.Fatalf("auditor sees %d transactions, want 2", n)
	}
	for i, key := range []string{"first", "second"} {
		tx := resp.GetTransactions()[i]
		if tx.GetIdempotencyKey() != key || tx.GetPrincipal() != "spiffe://bank.local/teller/tina" || len(tx.GetEntries()) != 2 {
			t.Errorf("transaction %d: key %q, principal %q, %d entries", i, tx.GetIdempotencyKey(), tx.GetPrincipal(), len(tx.GetEntries()))
		}
	}
	_, err = e.client(t, "spiffe://bank.local/customer/alice").ListTransactions(callCtx(t), &accountsv1.ListTransactionsRequest{})
	wantStatus(t, err, codes.PermissionDenied, "")
}
