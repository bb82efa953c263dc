package auditlog_test

import (
	"testing"

	_ "mtlsbank/gen/bank/identity/v1"
	_ "mtlsbank/gen/bank/payments/v1"
	"mtlsbank/internal/auditlog"
)

func TestNoSideEffects(t *testing.T) {
	for _, tt := range []struct {
		method string
		want   bool
	}{
		{"/bank.accounts.v1.AccountsService/GetAccount", true},
		{"/bank.accounts.v1.AccountsService/ListAccounts", true},
		{"/bank.accounts.v1.AccountsService/WatchLedger", true},
		{"/bank.identity.v1.IdentityService/WhoAmI", true},
		{"/bank.payments.v1.PaymentsService/GetPayment", true},
		{"/bank.payments.v1.PaymentsService/ListPayments", true},
		{"/grpc.health.v1.Health/Check", true},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true},
		// Everything that moves money or opens accounts, and whatever the proto does not
		// declare, waits for its record.
		{"/bank.accounts.v1.AccountsService/OpenAccount", false},
		{"/bank.accounts.v1.AccountsService/Deposit", false},
		{"/bank.accounts.v1.AccountsService/Withdraw", false},
		{"/bank.accounts.v1.AccountsService/Transfer", false},
		{"/bank.payments.v1.PaymentsService/CreatePayment", false},
		{"/bank.accounts.v1.AccountsService/NoSuchMethod", false},
		{"/bank.nosuch.v1.Service/GetThing", false},
		{"/bank.accounts.v1.Account/GetAccount", false}, // a message, not a service
		{"GetAccount", false},
		{"", false},
	} {
		if got := auditlog.NoSideEffects(tt.method); got != tt.want {
			t.Errorf("NoSideEffects(%q) = %v, want %v", tt.method, got, tt.want)
		}
	}
}
