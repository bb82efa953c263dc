package cli

import (
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/codes"
)

// failure is the error every command returns: a diagnosis ready to print.
type failure struct {
	diag diagnosis
}

func (f *failure) Error() string { return f.diag.line }

// usageFailure is a mistake on the command line: nothing was sent.
func usageFailure(err error) *failure {
	return &failure{diag: diagnosis{kind: KindUsage, line: err.Error()}}
}

// localFailure is a failure of a local step that is not the user's typing (writing
// output, for example).
func localFailure(err error) *failure {
	return &failure{diag: diagnosis{kind: KindLocal, line: err.Error()}}
}

// errorJSON is what --output json prints on stderr for a failure.
type errorJSON struct {
	Error struct {
		Kind      Kind   `json:"kind"`
		Diagnosis string `json:"diagnosis"`
		Code      string `json:"code,omitempty"`
		Message   string `json:"message,omitempty"`
		Local     bool   `json:"local,omitempty"`
		// Reason is the google.rpc.ErrorInfo reason (domain bank.local) of the refusal.
		Reason   string `json:"reason,omitempty"`
		ExitCode int    `json:"exit_code"`
		// IdempotencyKey is the key bankctl generated for the failed request.
		IdempotencyKey string `json:"idempotency_key,omitempty"`
	} `json:"error"`
}

// report prints a failure: one diagnostic line, then the raw gRPC status.
func (a *app) report(f *failure) {
	d := f.diag
	if a.json() {
		var out errorJSON
		out.Error.Kind = d.kind
		out.Error.Diagnosis = d.line
		if d.hasStatus() {
			out.Error.Code = d.code.String()
			out.Error.Message = d.message
			out.Error.Local = d.local
			out.Error.Reason = d.reason
		}
		out.Error.ExitCode = d.exitCode()
		out.Error.IdempotencyKey = a.generatedKey
		// One line, and no \u003e for ">" in messages a script may print as they are.
		enc := json.NewEncoder(a.stderr)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err == nil {
			return
		}
	}
	fmt.Fprintf(a.stderr, "bankctl: %s\n", d.line)
	switch {
	case d.kind == KindUsage:
		fmt.Fprintln(a.stderr, "Run 'bankctl --help' or 'bankctl COMMAND --help' for usage.")
	case d.local && d.hasStatus():
		fmt.Fprintf(a.stderr, "grpc status: %s: %s (local check: nothing was sent)\n", d.code, d.message)
	case d.hasStatus() && d.reason != "":
		fmt.Fprintf(a.stderr, "grpc status: %s: %s (reason %s)\n", d.code, d.message, d.reason)
	case d.hasStatus():
		fmt.Fprintf(a.stderr, "grpc status: %s: %s\n", d.code, d.message)
	}
}

// hasStatus reports whether the failure carries a gRPC status (every RPC failure and
// every local certificate check does; usage errors do not).
func (d diagnosis) hasStatus() bool {
	return d.kind != KindUsage && d.kind != KindLocal && (d.code != codes.OK || d.message != "")
}
