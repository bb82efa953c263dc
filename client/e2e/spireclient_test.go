package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
	typev1 "mtlsbank/gen/bank/type/v1"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/svidsource"
	"mtlsbank/internal/tlsconfig"
)

// The load client is this test binary run again, copied once per identity so that the
// SPIRE agent tells the copies apart by their path (unix:path selectors). TestMain runs
// it instead of the tests when loadClientEnv is set; its settings come in the
// environment.
const (
	loadClientEnv  = "BANK_E2E_LOAD_CLIENT" // the client's name, for its errors
	loadEndpoint   = "BANK_E2E_SPIFFE_ENDPOINT"
	loadAccounts   = "BANK_E2E_ACCOUNTS_ADDR"
	loadPayments   = "BANK_E2E_PAYMENTS_ADDR"
	loadWorkers    = "BANK_E2E_WORKERS"
	loadFrom       = "BANK_E2E_FROM_ACCOUNT" // pay from it (and read it); empty: reads only
	loadTo         = "BANK_E2E_TO_ACCOUNT"
	loadStatsFile  = "BANK_E2E_STATS"
	loadStopFile   = "BANK_E2E_STOP"
	loadCallPacing = 200 * time.Millisecond // between two calls of one worker
)

// loadStats is what a load client reports, rewritten to its stats file as it runs.
type loadStats struct {
	Calls    int64    `json:"calls"`
	Failures int64    `json:"failures"`
	Errors   []string `json:"errors,omitempty"` // the first few
	// OwnSerials are the client's serials as the services saw them (WhoAmI), in order.
	OwnSerials []string `json:"own_serials"`
	// OwnNotAfter is the NotAfter of the latest SVID the services saw.
	OwnNotAfter time.Time `json:"own_not_after"`
	// ServerSerials are the serials of each service's certificate the client saw.
	ServerSerials map[string][]string `json:"server_serials"`
	LastSuccess   time.Time           `json:"last_success"`
	LastFailure   time.Time           `json:"last_failure"`
	// FirstFailure is the first failure after the last success.
	FirstFailure time.Time `json:"first_failure"`
	Done         bool      `json:"done"`
}

// recorder collects loadStats from the workers.
type recorder struct {
	mu sync.Mutex
	s  loadStats
}

func (r *recorder) success(service string, serverSerial string, who *identityv1.WhoAmIResponse) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.Calls++
	r.s.LastSuccess = time.Now()
	if !slices.Contains(r.s.ServerSerials[service], serverSerial) {
		r.s.ServerSerials[service] = append(r.s.ServerSerials[service], serverSerial)
	}
	if who != nil {
		if !slices.Contains(r.s.OwnSerials, who.GetSerial()) {
			r.s.OwnSerials = append(r.s.OwnSerials, who.GetSerial())
		}
		if na := who.GetNotAfter().AsTime(); na.After(r.s.OwnNotAfter) {
			r.s.OwnNotAfter = na
		}
	}
}

func (r *recorder) failure(what string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.Calls++
	r.s.Failures++
	r.s.LastFailure = time.Now()
	if !r.s.FirstFailure.After(r.s.LastSuccess) {
		r.s.FirstFailure = r.s.LastFailure
	}
	if len(r.s.Errors) < 5 {
		r.s.Errors = append(r.s.Errors, fmt.Sprintf("%s %s: %v", time.Now().Format(time.RFC3339), what, err))
	}
}

// write replaces the stats file atomically.
func (r *recorder) write(path string, done bool) error {
	r.mu.Lock()
	r.s.Done = done
	b, err := json.Marshal(r.s)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return pki.WriteFileAtomic(path, b, 0o600)
}

// runLoadClient is the load client's main: workers calling both services with the SVID
// from the Workload API until the stop file appears.
func runLoadClient() int {
	if err := loadClient(); err != nil {
		fmt.Fprintf(os.Stderr, "load client %s: %v\n", os.Getenv(loadClientEnv), err)
		return 1
	}
	return 0
}

func loadClient() error {
	workers, err := strconv.Atoi(os.Getenv(loadWorkers))
	if err != nil || workers < 1 {
		return fmt.Errorf("%s=%q: want a positive number", loadWorkers, os.Getenv(loadWorkers))
	}
	statsFile, stopFile := os.Getenv(loadStatsFile), os.Getenv(loadStopFile)
	ctx := context.Background()
	w, err := svidsource.Open(ctx, os.Getenv(loadEndpoint), spiffeid.RequireTrustDomainFromString("bank.local"), svidsource.WithStartTimeout(60*time.Second))
	if err != nil {
		return err
	}
	defer w.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go w.Run(runCtx)
	src := w.Source()
	dial := func(addr, service string) (*grpc.ClientConn, error) {
		id := spiffeid.RequireFromString("spiffe://bank.local/service/" + service)
		return grpc.NewClient(addr,
			grpc.WithTransportCredentials(tlsconfig.ClientCredentials(src, "localhost", tlsconfig.WithServerID(id))),
			grpc.WithPerRPCCredentials(tlsconfig.ServerCheck(src)))
	}
	accountsConn, err := dial(os.Getenv(loadAccounts), "accounts")
	if err != nil {
		return err
	}
	defer accountsConn.Close()
	paymentsConn, err := dial(os.Getenv(loadPayments), "payments")
	if err != nil {
		return err
	}
	defer paymentsConn.Close()

	rec := &recorder{s: loadStats{ServerSerials: map[string][]string{}}}
	from, to := os.Getenv(loadFrom), os.Getenv(loadTo)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for n := i; runCtx.Err() == nil; n++ {
				call(rec, n, accountsConn, paymentsConn, from, to)
				select {
				case <-runCtx.Done():
				case <-time.After(loadCallPacing):
				}
			}
		})
	}
	for {
		if err := rec.write(statsFile, false); err != nil {
			stop()
			wg.Wait()
			return err
		}
		if _, err := os.Stat(stopFile); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond) // a reporting interval, not a synchronization
	}
	stop()
	wg.Wait()
	return rec.write(statsFile, true)
}

// call makes the n-th call of a worker: in turn WhoAmI to accounts, a payment (or a
// payment listing), a read of the account, and WhoAmI to payments.
func call(rec *recorder, n int, accountsConn, paymentsConn *grpc.ClientConn, from, to string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p peer.Peer
	var err error
	var who *identityv1.WhoAmIResponse
	service := "accounts"
	switch n % 4 {
	case 0:
		who, err = identityv1.NewIdentityServiceClient(accountsConn).WhoAmI(ctx, &identityv1.WhoAmIRequest{}, grpc.Peer(&p))
	case 1:
		service = "payments"
		if from == "" {
			_, err = paymentsv1.NewPaymentsServiceClient(paymentsConn).ListPayments(ctx, &paymentsv1.ListPaymentsRequest{PageSize: 5}, grpc.Peer(&p))
			break
		}
		var resp *paymentsv1.CreatePaymentResponse
		resp, err = paymentsv1.NewPaymentsServiceClient(paymentsConn).CreatePayment(ctx, &paymentsv1.CreatePaymentRequest{
			FromAccountId: from, ToAccountId: to, IdempotencyKey: "load-" + rand.Text(),
			Amount: &typev1.Money{CurrencyCode: "EUR", MinorUnits: 1}, Memo: "rotation load",
		}, grpc.Peer(&p))
		if err == nil && resp.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_COMPLETED {
			err = fmt.Errorf("payment %s is %s", resp.GetPayment().GetId(), resp.GetPayment().GetStatus())
		}
	case 2:
		if from == "" {
			who, err = identityv1.NewIdentityServiceClient(accountsConn).WhoAmI(ctx, &identityv1.WhoAmIRequest{}, grpc.Peer(&p))
			break
		}
		_, err = accountsv1.NewAccountsServiceClient(accountsConn).GetAccount(ctx, &accountsv1.GetAccountRequest{Id: from}, grpc.Peer(&p))
	case 3:
		service = "payments"
		who, err = identityv1.NewIdentityServiceClient(paymentsConn).WhoAmI(ctx, &identityv1.WhoAmIRequest{}, grpc.Peer(&p))
	}
	if err != nil {
		rec.failure(fmt.Sprintf("call %d to %s", n%4, service), err)
		return
	}
	serial := ""
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		serial = pki.SerialHex(ti.State.PeerCertificates[0].SerialNumber)
	}
	rec.success(service, serial, who)
}

// readStats reads a load client's stats file; ok is false until it has been written.
func readStats(dir, name string) (s loadStats, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return loadStats{}, false
	}
	return s, true
}
