package accounts_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
)

// TestDelegationForAuditorMovesNothing is the attack of issue 11: the payments service's
// certificate names the read-only auditor as the end user and moves money out of bob's
// account. The auditor may read every account, but has no right to move money, so a
// delegate acting for it may not either.
func TestDelegationForAuditorMovesNothing(t *testing.T) {
	b := newBank(t)
	before := balances(t, b.teller)
	_, err := b.payments.Transfer(actingFor(callCtx(t), auditorID), &accountsv1.TransferRequest{
		FromAccountId: b.bobEUR.GetId(), ToAccountId: b.aliceEUR.GetId(),
		Amount: amountOf("EUR", 100), IdempotencyKey: "auditor-attack",
	})
	wantStatus(t, err, codes.PermissionDenied, "")
	after := balances(t, b.teller)
	for id, v := range before {
		if after[id] != v {
			t.Errorf("account %s: balance %d -> %d", id, v, after[id])
		}
	}
}
