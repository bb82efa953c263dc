package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/money"
)

// unary dials service, makes one call to method through do, and turns a failure into a
// diagnosis.
func unary[T proto.Message](a *app, cmd *cobra.Command, service, method string, do func(context.Context, grpc.ClientConnInterface) (T, error)) (T, error) {
	var zero T
	s, err := a.dial(cmd.Context(), service)
	if err != nil {
		return zero, err
	}
	defer s.Close()
	ctx, cancel := s.callContext(cmd.Context())
	defer cancel()
	resp, err := do(ctx, s.cc)
	if err != nil {
		return zero, s.fail(ctx, method, err)
	}
	return resp, nil
}

// errZeroAmount: no money-moving request may move nothing.
var errZeroAmount = errors.New("the amount must be greater than zero")

// parseAmount converts an amount typed in major units ("25.00") to exact minor units of
// currency with internal/money; no floating point is involved.
func parseAmount(amount, currency string) (*typev1.Money, error) {
	code := strings.ToUpper(strings.TrimSpace(currency))
	minor, err := money.Parse(strings.TrimSpace(amount), code)
	if err != nil {
		return nil, usageFailure(fmt.Errorf("--amount %q --currency %s: %w (type major units, such as 25.00)", amount, currency, err))
	}
	if minor == 0 {
		// The services refuse it too; saying so here saves a round trip and an idempotency key.
		return nil, usageFailure(fmt.Errorf("--amount %q: %w", amount, errZeroAmount))
	}
	return &typev1.Money{CurrencyCode: code, MinorUnits: minor}, nil
}

// idempotencyKey returns the key given, or generates one and says so, so that a retry
// after a lost answer can reuse it and move the money only once.
func (a *app) idempotencyKey(given string) string {
	if given != "" {
		return given
	}
	key := "bankctl-" + rand.Text()
	a.generatedKey = key
	if !a.json() {
		// With --output json the key is in the response, or in the error on failure.
		a.note("idempotency key: %s (generated; to retry this exact request safely, add --idempotency-key %s)", key, key)
	}
	return key
}

// validService checks --service.
func validService(s string) error {
	switch s {
	case serviceAccounts, servicePayments:
		return nil
	}
	return usageFailure(fmt.Errorf("--service %q: want accounts or payments", s))
}

// moneyFlags are the flags of a command that moves money.
type moneyFlags struct {
	amount         string
	currency       string
	idempotencyKey string
}

func (m *moneyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&m.amount, "amount", "", "amount in major units of --currency, such as 25.00 (required)")
	cmd.Flags().StringVar(&m.currency, "currency", "EUR", "ISO 4217 currency of --amount; must be the accounts' currency")
	cmd.Flags().StringVar(&m.idempotencyKey, "idempotency-key", "", "key that makes a retry safe (1-128 of A-Z a-z 0-9 . _ : -); generated and printed when missing")
	_ = cmd.MarkFlagRequired("amount")
}

func (m *moneyFlags) money() (*typev1.Money, error) { return parseAmount(m.amount, m.currency) }
