package accounts_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	// The audit record names the delegate, the end user it claimed and the missing rule.
	wantAudit(t, b.logs.String(), "decision=deny", "spiffe_id="+paymentsID, "on_behalf_of="+auditorID,
		`no role of the end user [auditor] grants /bank.accounts.v1.AccountsService/Transfer on_behalf`)

	// The same delegate for alice, from alice's account: allowed, and audited as such.
	if _, err := b.payments.Transfer(actingFor(callCtx(t), aliceID), &accountsv1.TransferRequest{
		FromAccountId: b.aliceEUR.GetId(), ToAccountId: b.bobEUR.GetId(),
		Amount: amountOf("EUR", 100), IdempotencyKey: "alice-pays",
	}); err != nil {
		t.Fatalf("payments for alice from her account: %v", err)
	}
	wantAudit(t, b.logs.String(), "decision=allow", "spiffe_id="+paymentsID, "delegated=true", "on_behalf_of="+aliceID,
		"on_behalf_roles=[customer]", "on_behalf_scope=own", `on_behalf_rule="identity \"customers\" -> role \"customer\" on_behalf (scope own)"`,
		`role \"payments-service\" (delegate)`)
}

// wantAudit fails unless one authz audit record of logs (text handler) contains every one
// of parts.
func wantAudit(tb testing.TB, logs string, parts ...string) {
	tb.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `msg="authz decision"`) {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return
		}
	}
	tb.Errorf("no audit record has all of %q", parts)
}

// The accounts methods, in the order the matrix runs them.
const (
	mOpen     = "OpenAccount"
	mDeposit  = "Deposit"
	mWithdraw = "Withdraw"
	mTransfer = "Transfer"
	mGet      = "GetAccount"
	mList     = "ListAccounts"
	mWatch    = "WatchLedger"
)

var allMethods = []string{mOpen, mDeposit, mWithdraw, mTransfer, mGet, mList, mWatch}

const internID = "spiffe://bank.local/intern/ivan"

// widePolicy is the accounts policy with delegation widened to every method, so that the
// matrix shows the handlers checking each method's resource against the END USER: payments
// may delegate everything; a teller has everything done for it on any account, a customer
// on its own accounts only, an auditor only reads, on any account.
const widePolicy = `trust_domain: bank.local
identities:
  - { name: tellers, match: { spiffe_id_prefix: "spiffe://bank.local/teller/" }, roles: [teller] }
  - { name: customers, match: { spiffe_id_prefix: "spiffe://bank.local/customer/" }, roles: [customer] }
  - { name: auditors, match: { spiffe_id_prefix: "spiffe://bank.local/auditor/" }, roles: [auditor] }
  - { name: payments, match: { spiffe_id: "spiffe://bank.local/service/payments" }, roles: [payments-service] }
roles:
  teller:
    scope: any
    methods:
      - /bank.accounts.v1.AccountsService/OpenAccount
      - /bank.accounts.v1.AccountsService/Deposit
      - /bank.accounts.v1.AccountsService/Withdraw
      - /bank.accounts.v1.AccountsService/GetAccount
      - /bank.accounts.v1.AccountsService/ListAccounts
    on_behalf: { scope: any, methods: ["/bank.accounts.v1.AccountsService/*"] }
  customer:
    methods: [/bank.accounts.v1.AccountsService/GetAccount, /bank.accounts.v1.AccountsService/ListAccounts]
    on_behalf: { scope: own, methods: ["/bank.accounts.v1.AccountsService/*"] }
  auditor:
    scope: any
    methods: &reads
      - /bank.accounts.v1.AccountsService/GetAccount
      - /bank.accounts.v1.AccountsService/ListAccounts
      - /bank.accounts.v1.AccountsService/WatchLedger
    on_behalf: { scope: any, methods: *reads }
  payments-service:
    delegate: true
    methods: ["/bank.accounts.v1.AccountsService/*"]
  authenticated:
    methods:
      - /bank.identity.v1.IdentityService/WhoAmI
      - /grpc.health.v1.Health/*
      - /grpc.reflection.v1.ServerReflection/*
      - /grpc.reflection.v1alpha.ServerReflection/*
`

// onBehalfRule is what a policy lets a delegate do for an end user: the methods of its
// on_behalf rule and whether their scope is any.
type onBehalfRule struct {
	methods []string
	any     bool
}

// TestDelegationMatrix runs every delegate (the payments service, and a customer, a teller
// and an auditor trying to delegate) x end user (teller, alice, bob, auditor, an identity
// no entry maps) x accounts method x resource owned or not by the END USER, over real mTLS,
// under the default accounts policy and under widePolicy. Each call must get exactly the
// code the policy's rules give, and money must move only for the calls allowed.
func TestDelegationMatrix(t *testing.T) {
	defaultRules := map[string]onBehalfRule{
		tellerID: {methods: []string{mTransfer}, any: true},
		aliceID:  {methods: []string{mTransfer}},
		bobID:    {methods: []string{mTransfer}},
	}
	wideRules := map[string]onBehalfRule{
		tellerID:  {methods: allMethods, any: true},
		aliceID:   {methods: allMethods},
		bobID:     {methods: allMethods},
		auditorID: {methods: []string{mGet, mList, mWatch}, any: true},
	}
	widePath := filepath.Join(t.TempDir(), "wide.yaml")
	if err := os.WriteFile(widePath, []byte(widePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	policies := []struct {
		name      string
		path      string
		delegable []string // methods the payments service may delegate
		rules     map[string]onBehalfRule
	}{
		{name: "default policy", path: policyPath, delegable: []string{mTransfer}, rules: defaultRules},
		{name: "wide policy", path: widePath, delegable: allMethods, rules: wideRules},
	}
	for _, pol := range policies {
		t.Run(pol.name, func(t *testing.T) {
			runDelegationMatrix(t, newEnvWithPolicy(t, pol.path), func(delegate, endUser, method string, owned bool) codes.Code {
				rule, ok := pol.rules[endUser]
				switch {
				case delegate != paymentsID, !slices.Contains(pol.delegable, method), !ok, !slices.Contains(rule.methods, method):
					return codes.PermissionDenied
				case rule.any, owned && method != mWatch: // the whole ledger is nobody's own
					return codes.OK
				}
				return codes.PermissionDenied
			})
		})
	}
}

func runDelegationMatrix(t *testing.T, e *env, want func(delegate, endUser, method string, owned bool) codes.Code) {
	teller := e.client(t, tellerID)
	delegates := []string{paymentsID, aliceID, tellerID, auditorID}
	clients := make(map[string]accountsv1.AccountsServiceClient)
	for _, d := range delegates {
		clients[d] = e.client(t, d)
	}
	endUsers := []string{tellerID, aliceID, bobID, auditorID, internID}
	// Every end user owns a funded account, so that a call wrongly allowed would succeed
	// rather than fail for want of money; carol's is the one nobody in the matrix owns.
	owns := make(map[string]*accountsv1.Account)
	for _, u := range append(endUsers, carolID) {
		owns[u] = openAccount(t, teller, u, "EUR")
		deposit(t, teller, owns[u], 1000, "fund-"+owns[u].GetId())
	}
	sink := openAccount(t, teller, "spiffe://bank.local/customer/dave", "EUR")
	before := balances(t, teller)
	delta := make(map[string]int64)
	opened := 0

	keys := 0
	key := func() string { keys++; return fmt.Sprintf("matrix-%d", keys) }
	one := amountOf("EUR", 1)
	for _, delegate := range delegates {
		for _, user := range endUsers {
			for _, method := range allMethods {
				for _, owned := range []bool{true, false} {
					name := fmt.Sprintf("%s/for %s/%s/owned=%v", delegate, user, method, owned)
					account, owner := owns[user], user
					if !owned {
						account, owner = owns[carolID], carolID
					}
					ctx := actingFor(callCtx(t), user)
					c := clients[delegate]
					var (
						err error
						txn *accountsv1.Transaction
					)
					switch method {
					case mOpen:
						_, err = c.OpenAccount(ctx, &accountsv1.OpenAccountRequest{Owner: owner, Currency: "EUR", DisplayName: "matrix"})
					case mDeposit:
						var r *accountsv1.DepositResponse
						r, err = c.Deposit(ctx, &accountsv1.DepositRequest{AccountId: account.GetId(), Amount: one, IdempotencyKey: key()})
						txn = r.GetTransaction()
					case mWithdraw:
						var r *accountsv1.WithdrawResponse
						r, err = c.Withdraw(ctx, &accountsv1.WithdrawRequest{AccountId: account.GetId(), Amount: one, IdempotencyKey: key()})
						txn = r.GetTransaction()
					case mTransfer:
						var r *accountsv1.TransferResponse
						r, err = c.Transfer(ctx, &accountsv1.TransferRequest{FromAccountId: account.GetId(), ToAccountId: sink.GetId(), Amount: one, IdempotencyKey: key()})
						txn = r.GetTransaction()
					case mGet:
						_, err = c.GetAccount(ctx, &accountsv1.GetAccountRequest{Id: account.GetId()})
					case mList:
						_, err = c.ListAccounts(ctx, &accountsv1.ListAccountsRequest{Owner: owner})
					case mWatch:
						var s grpc.ServerStreamingClient[accountsv1.WatchLedgerResponse]
						if s, err = c.WatchLedger(ctx, &accountsv1.WatchLedgerRequest{}); err == nil {
							_, err = s.Recv() // the funding deposits are there to read
						}
					}
					wantCode := want(delegate, user, method, owned)
					if got := status.Code(err); got != wantCode {
						t.Errorf("%s: %v, want %s", name, err, wantCode)
						continue
					}
					if wantCode == codes.PermissionDenied && status.Convert(err).Message() != "permission denied" {
						t.Errorf("%s: denial message %q is not the generic one", name, status.Convert(err).Message())
					}
					if err != nil {
						continue
					}
					switch method {
					case mOpen:
						opened++
					case mDeposit:
						delta[account.GetId()]++
					case mWithdraw:
						delta[account.GetId()]--
					case mTransfer:
						delta[account.GetId()]--
						delta[sink.GetId()]++
					}
					if txn != nil && (txn.GetPrincipal() != delegate || txn.GetOnBehalfOf() != user) {
						t.Errorf("%s: recorded principal %q on behalf of %q, want %s on behalf of %s", name, txn.GetPrincipal(), txn.GetOnBehalfOf(), delegate, user)
					}
				}
			}
		}
	}
	after := balances(t, teller)
	for id, v := range before {
		if after[id] != v+delta[id] {
			t.Errorf("account %s: balance %d, want %d (%+d from the allowed calls)", id, after[id], v+delta[id], delta[id])
		}
	}
	if len(after) != len(before)+opened {
		t.Errorf("%d accounts after the matrix, want %d (%d opened by allowed calls)", len(after), len(before)+opened, opened)
	}
}

// TestOnBehalfIsNotADirectGrant: the customer role lists Transfer under on_behalf, which
// lets the payments service transfer for a customer; it does not let the customer call
// Transfer itself, even from its own account, so payments' limits cannot be skipped.
func TestOnBehalfIsNotADirectGrant(t *testing.T) {
	b := newBank(t)
	before := balances(t, b.teller)
	_, err := b.alice.Transfer(callCtx(t), &accountsv1.TransferRequest{
		FromAccountId: b.aliceEUR.GetId(), ToAccountId: b.bobEUR.GetId(),
		Amount: amountOf("EUR", 100), IdempotencyKey: "alice-direct",
	})
	wantStatus(t, err, codes.PermissionDenied, "")
	after := balances(t, b.teller)
	for id, v := range before {
		if after[id] != v {
			t.Errorf("account %s: balance %d -> %d", id, v, after[id])
		}
	}
}
