package accounts

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/ledger"
	"mtlsbank/internal/money"
)

// amountFromProto reads a request's Money. A request without one never gets here (its
// rules require it: package validation); the ledger checks the currency and the sign,
// naming amount.currency_code and amount.minor_units.
func amountFromProto(m *typev1.Money) money.Amount {
	return money.Amount{Currency: m.GetCurrencyCode(), Minor: m.GetMinorUnits()}
}

func moneyToProto(minor int64, currency string) *typev1.Money {
	return &typev1.Money{CurrencyCode: currency, MinorUnits: minor}
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func accountToProto(a ledger.Account) *accountsv1.Account {
	return &accountsv1.Account{
		Id:          a.ID.String(),
		Owner:       a.Owner,
		Currency:    a.Currency,
		Balance:     moneyToProto(a.Balance, a.Currency),
		DisplayName: a.DisplayName,
		CreateTime:  timeToProto(a.CreatedAt),
	}
}

func kindToProto(k ledger.Kind) accountsv1.TransactionKind {
	switch k {
	case ledger.KindDeposit:
		return accountsv1.TransactionKind_TRANSACTION_KIND_DEPOSIT
	case ledger.KindWithdrawal:
		return accountsv1.TransactionKind_TRANSACTION_KIND_WITHDRAWAL
	case ledger.KindTransfer:
		return accountsv1.TransactionKind_TRANSACTION_KIND_TRANSFER
	}
	return accountsv1.TransactionKind_TRANSACTION_KIND_UNSPECIFIED
}

// transactionToProto maps t. The ledger does not keep the idempotency key on the
// transaction; key is the one of the request that returned t, which is the key t was
// made with, because a replay is found by the same caller and key.
func transactionToProto(t ledger.Transaction, key string) *accountsv1.Transaction {
	entries := make([]*accountsv1.LedgerEntry, 0, len(t.Entries))
	for _, e := range t.Entries {
		entries = append(entries, entryToProto(e))
	}
	return &accountsv1.Transaction{
		Id:             t.ID.String(),
		Kind:           kindToProto(t.Kind),
		Amount:         moneyToProto(t.Amount, t.Currency),
		Entries:        entries,
		Reference:      t.Reference,
		Principal:      t.Principal,
		OnBehalfOf:     t.OnBehalfOf,
		CreateTime:     timeToProto(t.CreatedAt),
		IdempotencyKey: key,
	}
}

func entryToProto(e ledger.Entry) *accountsv1.LedgerEntry {
	return &accountsv1.LedgerEntry{
		Sequence:      e.Sequence,
		TransactionId: e.TransactionID.String(),
		AccountId:     e.AccountID.String(),
		Amount:        moneyToProto(e.Amount, e.Currency),
		BalanceAfter:  moneyToProto(e.BalanceAfter, e.Currency),
		CreateTime:    timeToProto(e.CreatedAt),
	}
}
