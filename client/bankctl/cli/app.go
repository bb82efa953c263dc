package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"mtlsbank/internal/tracing"
)

// Exit codes of bankctl. They are part of its interface: scripts branch on them.
const (
	// ExitOK means the command did what it was asked.
	ExitOK = 0
	// ExitFailure means the service answered and refused the request (InvalidArgument,
	// NotFound, FailedPrecondition, ...), or a local step other than those below failed.
	ExitFailure = 1
	// ExitUsage means the command line was wrong: unknown flag, missing flag, bad amount,
	// unreadable certificate file. Nothing was sent.
	ExitUsage = 2
	// ExitTransport means the service could not be reached or the caller could not be
	// authenticated: TLS handshake rejected (either side), Unauthenticated, unreachable,
	// timed out, or bankctl's own check of its certificate failed before dialing.
	ExitTransport = 3
	// ExitPermission means the service knew the caller and refused it (PermissionDenied).
	ExitPermission = 4
)

// Default addresses of the services, as DESIGN.md fixes them.
const (
	DefaultAccountsAddr = "localhost:50051"
	DefaultPaymentsAddr = "localhost:50052"
)

// envPrefix prefixes the environment variable of every flag: --server-name is BANK_SERVER_NAME.
const envPrefix = "BANK_"

// The SPIFFE IDs bankctl expects the services to present, unless --server-spiffe-id says
// otherwise: a valid bank certificate of another service (or person) is not the service.
const (
	accountsServerID = "spiffe://bank.local/service/accounts"
	paymentsServerID = "spiffe://bank.local/service/payments"
)

// Service names accepted by --service.
const (
	serviceAccounts = "accounts"
	servicePayments = "payments"
)

const (
	outputTable = "table"
	outputJSON  = "json"
)

// globals holds the persistent flags, shared by every command.
type globals struct {
	addr         string
	accountsAddr string
	paymentsAddr string
	as           string
	certsDir     string
	cert         string
	key          string
	ca           string
	crl          string
	serverName   string
	// serverSPIFFEID overrides the SPIFFE ID the server must present.
	serverSPIFFEID string
	timeout        time.Duration
	output         string
	onBehalfOf     string
	// skipCheck sends a certificate that bankctl's own check rejects, to see the server's answer.
	skipCheck bool
	// spiffeEndpoint is the SPIFFE Workload API the identity comes from instead of files.
	spiffeEndpoint string
}

// app is one run of bankctl.
type app struct {
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	now    func() time.Time
	g      globals
	// cmd is the command running, whose flags name the request fields in diagnoses.
	cmd *cobra.Command
	// generatedKey is the idempotency key bankctl made up for this run, if any: a
	// failure report repeats it so that the retry can reuse it.
	generatedKey string
	// tracing is set up by the first dial (startTracing) and flushed when Run ends.
	tracing         *tracing.Tracing
	tracingEndpoint string
}

// Run runs bankctl with args (without the program name), writing results to stdout and
// diagnostics to stderr, reading BANK_* variables through getenv, and returns the exit code.
// Cancelling ctx (Ctrl-C) ends a running command; it ends `ledger watch` successfully.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	defer a.flushSpans() // after the report: a collector that is away is the lesser news
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var f *failure
	if !errors.As(err, &f) {
		// Errors cobra raises itself (unknown command or flag, missing required flag,
		// wrong number of arguments) are usage errors.
		f = usageFailure(err)
	}
	a.report(f)
	return f.diag.exitCode()
}

const rootLong = `bankctl calls the mtlsbank services over mutual TLS.

Every command sends a client certificate: --as NAME uses NAME.crt and NAME.key from
--certs-dir (certs/dev, written by 'make certs'), or give --cert and --key. The server's
certificate is checked against --ca (default: ca.crt in --certs-dir), never against the
system roots, and must carry the SPIFFE ID of the service called
(spiffe://bank.local/service/accounts or .../payments; --server-spiffe-id overrides).
Every flag can also be set through the environment: --server-name is BANK_SERVER_NAME,
--as is BANK_AS, and so on.

Amounts are typed in major units ("25.00") and converted exactly to minor units of
--currency. Money-moving commands take --idempotency-key; when it is missing bankctl
generates one and prints it, so that a retry can reuse it and move money only once.

When a call fails, bankctl prints one line saying what happened and what to do, then the
raw gRPC status (code name and message). Before dialing it checks its own certificate
(validity, client-auth usage, key pair) and reports a bad one without a round trip.

Tracing: with OTEL_EXPORTER_OTLP_ENDPOINT set (e.g. http://localhost:4317, a collector's
OTLP/gRPC port), every call is a client span exported over OTLP, and the services continue
its trace (W3C traceparent). OTEL_SERVICE_NAME (default bankctl), OTEL_TRACES_SAMPLER and
OTEL_SDK_DISABLED are honoured.

Exit codes:
  0  success
  1  the service refused the request (InvalidArgument, NotFound, FailedPrecondition, ...),
     or a case of 'policy test' failed
  2  usage: bad flag, argument or file; nothing was sent
  3  transport or authentication: TLS handshake rejected by either side, Unauthenticated,
     server unreachable or timed out, or our certificate failed the local check
  4  permission: PermissionDenied (bankctl also shows who the server thinks you are),
     or 'policy check' denies`

const rootExample = `  bankctl --as alice whoami
  bankctl --as teller accounts open --owner spiffe://bank.local/customer/alice --currency EUR
  bankctl --as teller accounts deposit --account-id acc_123 --amount 25.00
  bankctl --as alice payments create --from-account-id acc_123 --to-account-id acc_456 --amount 5.00
  bankctl --as auditor ledger watch
  bankctl --as auditor reconcile
  bankctl --as alice --output json accounts list
  bankctl policy check --policy accounts --spiffe-id spiffe://bank.local/customer/alice --method /bank.accounts.v1.AccountsService/GetAccount`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "bankctl",
		Short:         "Call the mtlsbank services over mutual TLS",
		Long:          rootLong,
		Example:       rootExample,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Suggest a command within two edits of a mistyped one (also cobra's default).
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.cmd = cmd
			if err := a.applyEnv(cmd.Flags()); err != nil {
				return err
			}
			a.chooseIdentitySource(cmd.Flags())
			return a.validateGlobals()
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageFailure(err) })

	pf := root.PersistentFlags()
	g := &a.g
	pf.StringVar(&g.addr, "addr", "", "address of the service this command calls (default: --accounts-addr or --payments-addr)")
	pf.StringVar(&g.accountsAddr, "accounts-addr", DefaultAccountsAddr, "address of the accounts service")
	pf.StringVar(&g.paymentsAddr, "payments-addr", DefaultPaymentsAddr, "address of the payments service")
	pf.StringVar(&g.as, "as", "", "identity to call as: uses NAME.crt and NAME.key in --certs-dir (e.g. alice, teller, auditor)")
	pf.StringVar(&g.certsDir, "certs-dir", "certs/dev", "directory of the dev PKI used by --as and the --ca/--crl defaults")
	pf.StringVar(&g.cert, "cert", "", "client certificate chain (PEM, leaf first)")
	pf.StringVar(&g.key, "key", "", "private key of --cert (PEM)")
	pf.StringVar(&g.ca, "ca", "", "CA bundle that must have issued the server's certificate (default: ca.crt in --certs-dir)")
	pf.StringVar(&g.crl, "crl", "", "CRL used only to explain a rejection (default: crl.pem in --certs-dir, if present)")
	pf.StringVar(&g.serverName, "server-name", "", "name the server's certificate must carry (default: the host of the address)")
	pf.StringVar(&g.serverSPIFFEID, "server-spiffe-id", "", "SPIFFE ID the server's certificate must carry (default: "+accountsServerID+" for accounts and ledger commands, "+paymentsServerID+" for payments commands)")
	pf.DurationVar(&g.timeout, "timeout", 10*time.Second, "deadline of each call")
	pf.StringVarP(&g.output, "output", "o", outputTable, "output format: table or json")
	pf.BoolVar(&g.skipCheck, "skip-local-check", false, "send our certificate even when bankctl's own check says it cannot work, to see the server's answer")
	pf.StringVar(&g.spiffeEndpoint, "spiffe-endpoint", "", "take our certificate and the trust bundle from the SPIFFE Workload API at this address (unix:///path/to/agent.sock) "+
		"instead of --as/--cert/--key/--ca/--crl; when empty, "+workloadapi.SocketEnv+" is used if none of those is given")
	pf.StringVar(&g.onBehalfOf, "on-behalf-of", "", "send this SPIFFE ID as x-bank-on-behalf-of (only a delegating service may; anyone else is refused)")

	root.AddCommand(
		a.whoamiCommand(),
		a.healthCommand(),
		a.accountsCommand(),
		a.ledgerCommand(),
		a.paymentsCommand(),
		a.policyCommand(),
		a.reconcileCommand(),
		a.auditCommand(),
	)
	// A command that only groups subcommands would print its help and exit 0 when given
	// a mistyped one; refuse it instead, with cobra's suggestions.
	for _, c := range append(root.Commands(), root) {
		if c.HasSubCommands() {
			c.Args = subcommandArgs
			c.SuggestionsMinimumDistance = root.SuggestionsMinimumDistance
			if c.RunE == nil && c.Run == nil {
				c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
			}
		}
	}
	return root
}

// subcommandArgs refuses an argument to a command that only groups subcommands: it is a
// mistyped subcommand, and cobra would otherwise print the help and exit 0.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		sort.Strings(s)
		msg += fmt.Sprintf("; did you mean %s?", strings.Join(quoteAll(s), " or "))
	}
	return usageFailure(errors.New(msg))
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// applyEnv sets every flag not given on the command line from its BANK_* variable.
func (a *app) applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		v := a.getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	if len(errs) > 0 {
		return usageFailure(errors.Join(errs...))
	}
	return nil
}

// envName returns the environment variable of a flag: "server-name" -> "BANK_SERVER_NAME".
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// identityFlags are the flags of a file identity, which --spiffe-endpoint replaces.
var identityFlags = []string{"as", "cert", "key", "ca", "crl"}

// chooseIdentitySource takes SPIFFE_ENDPOINT_SOCKET as --spiffe-endpoint when neither it
// (nor BANK_SPIFFE_ENDPOINT) nor any identity flag was given: a variable left in the
// environment never replaces files asked for.
func (a *app) chooseIdentitySource(fs *pflag.FlagSet) {
	if a.g.spiffeEndpoint != "" || len(a.identityFlagsGiven(fs)) > 0 {
		return
	}
	a.g.spiffeEndpoint = a.getenv(workloadapi.SocketEnv)
}

// identityFlagsGiven lists the identity flags given on the command line or through BANK_*.
func (a *app) identityFlagsGiven(fs *pflag.FlagSet) []string {
	var given []string
	for _, name := range identityFlags {
		if f := fs.Lookup(name); f != nil && f.Changed {
			given = append(given, "--"+name)
		}
	}
	return given
}

func (a *app) validateGlobals() error {
	g := a.g
	if g.spiffeEndpoint != "" {
		if given := a.identityFlagsGiven(a.cmd.Flags()); len(given) > 0 {
			return usageFailure(fmt.Errorf("--spiffe-endpoint %s and %s are two sources of our certificate: give one or the other",
				g.spiffeEndpoint, strings.Join(given, ", ")))
		}
	}
	switch g.output {
	case outputTable, outputJSON:
	default:
		return usageFailure(fmt.Errorf("--output %q: want table or json", g.output))
	}
	if g.as != "" && (g.cert != "" || g.key != "") {
		return usageFailure(errors.New("--as and --cert/--key are alternatives: give one or the other"))
	}
	if (g.cert == "") != (g.key == "") {
		return usageFailure(errors.New("--cert and --key go together: give both"))
	}
	if g.as != "" && strings.ContainsAny(g.as, `/\`) {
		return usageFailure(fmt.Errorf("--as %q: want a name such as alice (files NAME.crt and NAME.key in --certs-dir)", g.as))
	}
	if g.serverSPIFFEID != "" {
		if _, err := parseServerID(g.serverSPIFFEID); err != nil {
			return usageFailure(err)
		}
	}
	if g.timeout <= 0 {
		return usageFailure(fmt.Errorf("--timeout %s: want a positive duration", g.timeout))
	}
	return nil
}

// json reports whether --output json was asked for.
func (a *app) json() bool { return a.g.output == outputJSON }

// spanFlushTimeout bounds the wait for the collector when bankctl exits: a collector that is
// away delays the exit by that much at most, and never changes its code.
const spanFlushTimeout = 2 * time.Second

// startTracing sets up tracing from the OTEL_* variables (through getenv) on the first call,
// and returns it.
func (a *app) startTracing() (*tracing.Tracing, error) {
	if a.tracing != nil {
		return a.tracing, nil
	}
	cfg, err := tracing.FromEnv(a.getenv)
	if err != nil {
		return nil, usageFailure(err)
	}
	// The exporter connects lazily: this returns at once.
	tr, err := tracing.New(context.Background(), "bankctl", cfg)
	if err != nil {
		return nil, usageFailure(err)
	}
	a.tracing, a.tracingEndpoint = tr, cfg.Endpoint
	return tr, nil
}

// flushSpans exports the spans of this run, for up to spanFlushTimeout; a failure is a
// line on stderr.
func (a *app) flushSpans() {
	ctx, cancel := context.WithTimeout(context.Background(), spanFlushTimeout)
	defer cancel()
	if err := a.tracing.Shutdown(ctx); err != nil {
		fmt.Fprintf(a.stderr, "bankctl: spans not sent to the collector at %s: %v\n", a.tracingEndpoint, err)
	}
}
