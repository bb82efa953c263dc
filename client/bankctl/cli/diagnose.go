package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/identity"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/refusal"
	"mtlsbank/internal/tlsconfig"
)

// Kind names a class of failure. The values are stable: `--output json` prints them in
// error.kind and scripts (scripts/demo.sh) compare them.
type Kind string

// Failure kinds. Every kind down to KindUnauthenticated is a transport or authentication
// failure (exit code 3).
const (
	// KindNoClientCert: the server wants a client certificate and none was sent.
	KindNoClientCert Kind = "no-client-cert"
	// KindClientUntrusted: the server does not trust the CA that issued our certificate
	// (another CA, or a self-signed certificate).
	KindClientUntrusted Kind = "client-cert-untrusted"
	// KindClientExpired: our certificate has expired.
	KindClientExpired Kind = "client-cert-expired"
	// KindClientNotYetValid: our certificate is not valid yet.
	KindClientNotYetValid Kind = "client-cert-not-yet-valid"
	// KindClientRevoked: our certificate is revoked.
	KindClientRevoked Kind = "client-cert-revoked"
	// KindClientUsage: our certificate lacks the clientAuth extended key usage.
	KindClientUsage Kind = "client-cert-wrong-usage"
	// KindClientIsCA: our certificate is a CA certificate, not a leaf.
	KindClientIsCA Kind = "client-cert-is-ca"
	// KindClientRejected: the server rejected our certificate for a reason the handshake
	// does not tell and bankctl cannot see locally.
	KindClientRejected Kind = "client-cert-rejected"
	// KindKeyMismatch: the private key does not belong to the certificate.
	KindKeyMismatch Kind = "client-key-mismatch"
	// KindNoSVID: --spiffe-endpoint gave no X.509-SVID: no agent answers there, or no
	// registration entry matches bankctl.
	KindNoSVID Kind = "no-svid"
	// KindServerUntrusted: the server's certificate is not issued by a CA of --ca.
	KindServerUntrusted Kind = "server-cert-untrusted"
	// KindServerName: the server's certificate is for other names than the one dialed.
	KindServerName Kind = "server-name-mismatch"
	// KindServerIdentity: the server's certificate is valid but carries another SPIFFE ID
	// than the service bankctl meant to call (or none): it is some other bank service.
	KindServerIdentity Kind = "server-identity-mismatch"
	// KindServerInvalid: the server's certificate is expired, revoked or otherwise unusable.
	KindServerInvalid Kind = "server-cert-invalid"
	// KindHandshake: the TLS handshake failed for another reason.
	KindHandshake Kind = "tls-handshake-failed"
	// KindUnreachable: nothing answered at the address.
	KindUnreachable Kind = "unreachable"
	// KindUnresolvable: the host of the address does not resolve (DNS or /etc/hosts).
	KindUnresolvable Kind = "host-unresolvable"
	// KindTimeout: no answer within --timeout.
	KindTimeout Kind = "timeout"
	// KindUnauthenticated: the server found no usable bank identity in our certificate.
	KindUnauthenticated Kind = "unauthenticated"

	// KindPermissionDenied: the server knows us and refuses the call (exit code 4).
	KindPermissionDenied Kind = "permission-denied"
	// KindRequest: the service refused the request itself: InvalidArgument, NotFound,
	// FailedPrecondition and the other codes (exit code 1).
	KindRequest Kind = "request-failed"
	// KindInterrupted: the command was interrupted before it finished (exit code 1).
	KindInterrupted Kind = "interrupted"
	// KindLocal: a local step failed, such as writing the output (exit code 1).
	KindLocal Kind = "local-error"
	// KindDifferences: reconcile found payments and the ledger disagreeing (exit code 1).
	KindDifferences Kind = "reconcile-differences"
	// KindUsage: the command line was wrong (exit code 2).
	KindUsage Kind = "usage"
	// KindAuditBroken: bankctl audit verify found a break in an audit trail.
	KindAuditBroken Kind = "audit-trail-broken"
)

// diagnosis is what bankctl tells a person about one failure.
type diagnosis struct {
	kind Kind
	// line says, in one line, what happened and what to do.
	line string
	// code and message are the raw gRPC status.
	code    codes.Code
	message string
	// reason is the google.rpc.ErrorInfo reason the line was made from, or empty.
	reason string
	// local is set when bankctl refused to dial: the status is its own, not the server's.
	local bool
}

func (d diagnosis) exitCode() int {
	switch d.kind {
	case KindUsage:
		return ExitUsage
	case KindPermissionDenied:
		return ExitPermission
	case KindRequest, KindInterrupted, KindLocal, KindDifferences, KindAuditBroken:
		return ExitFailure
	default:
		return ExitTransport
	}
}

// facts is what bankctl knew when a call failed; diagnose reads nothing else.
type facts struct {
	service    string // "accounts" or "payments"
	addr       string
	serverName string
	serverID   spiffeid.ID // the SPIFFE ID the server must present
	method     string      // full gRPC method name
	asName     string      // --as, if used
	certPath   string      // "" when no client certificate was sent
	leaf       *x509.Certificate
	caPath     string
	crlPath    string
	crl        *tlsconfig.CRL // local CRL, only to explain a rejection; may be nil
	// handshake is the error of our side of the last failed TLS handshake, with its types
	// (x509.HostnameError, x509.UnknownAuthorityError, ...) intact.
	handshake error
	// seen is the server's WhoAmI answer, fetched after a PermissionDenied.
	seen    *identityv1.WhoAmIResponse
	seenErr error
	// resolveErr is the error of looking up the address's host after a call that found no
	// server; nil when the host resolved, is an IP address, or was not looked up.
	resolveErr error
	// flagFor maps a request field path to the flag that sets it ("" for none); may be nil.
	flagFor func(field string) string
	// onBehalfOf is the delegation metadata we sent, if any.
	onBehalfOf string
	timeout    time.Duration
	now        time.Time
}

// tlsAlertPrefix starts the text crypto/tls gives an alert received from the peer. The
// alert type itself is unexported, and gRPC passes transport errors on as text only, so
// the alert is recognised by its text, which crypto/tls has kept stable.
const tlsAlertPrefix = "remote error: tls: "

// diagnose turns the error of a call into one line for a person. Classification happens
// here and nowhere else.
func diagnose(err error, f facts) diagnosis {
	var fl *failure
	if errors.As(err, &fl) {
		return fl.diag
	}
	st := status.Convert(err)
	d := diagnosis{code: st.Code(), message: st.Message()}
	if errors.Is(err, context.Canceled) || d.code == codes.Canceled {
		d.kind, d.line = KindInterrupted, "interrupted before the service answered; a money-moving call may or may not have happened: repeat it with the same idempotency key to be sure"
		return d
	}

	// Our side of the handshake failed: the server's certificate is the problem.
	if f.handshake != nil && (d.code == codes.Unavailable || d.code == codes.DeadlineExceeded) {
		if alert, ok := remoteAlert(f.handshake.Error()); ok {
			d.kind, d.line = clientCertRejected(alert, f)
			return d
		}
		d.kind, d.line = serverCertProblem(f.handshake, f)
		return d
	}
	// The server's rejection of our certificate: with TLS 1.3 it arrives as an alert on
	// the first read after our side of the handshake succeeded.
	if alert, ok := remoteAlert(d.message); ok {
		d.kind, d.line = clientCertRejected(alert, f)
		return d
	}
	if k, line, ok := serverCertProblemText(d.message, f); ok {
		d.kind, d.line = k, line
		return d
	}

	if f.resolveErr != nil && (d.code == codes.Unavailable || d.code == codes.DeadlineExceeded) {
		host, _, _ := net.SplitHostPort(f.addr)
		d.kind = KindUnresolvable
		d.line = fmt.Sprintf("cannot resolve host %q (the %s service's address %s): %s; check the name in --addr (or --%s-addr), or use an IP address",
			host, f.service, f.addr, resolveReason(f.resolveErr), f.service)
		return d
	}

	if ei, ok := refusal.Info(err); ok {
		if line, ok := reasonLine(ei, d.message, f); ok {
			d.kind, d.line, d.reason = KindRequest, line, ei.GetReason()
			return d
		}
	}

	switch d.code {
	case codes.Unavailable:
		if unreachable(d.message) {
			d.kind = KindUnreachable
			d.line = fmt.Sprintf("cannot reach the %s service at %s: nothing accepts connections there; start it (make run) or check --addr", f.service, f.addr)
			return d
		}
		if strings.Contains(d.message, "handshake") || strings.Contains(d.message, "tls:") {
			d.kind = KindHandshake
			d.line = fmt.Sprintf("the TLS handshake with %s failed; check that %s is a bank service speaking TLS 1.3, and see the status below", f.addr, f.addr)
			return d
		}
		d.kind = KindRequest
		d.line = fmt.Sprintf("the %s service is unavailable right now; retry later (a money-moving call is safe to retry with the same idempotency key)", f.service)
		return d
	case codes.DeadlineExceeded:
		d.kind = KindTimeout
		d.line = fmt.Sprintf("no answer from the %s service at %s within %s; check that it runs and is reachable, or raise --timeout", f.service, f.addr, f.timeout)
		return d
	case codes.Unauthenticated:
		d.kind = KindUnauthenticated
		d.line = fmt.Sprintf("the %s service accepted the connection but found no usable bank identity in %s (it needs exactly one SPIFFE ID of the bank's trust domain); use a certificate issued for a bank identity", f.service, certName(f))
		return d
	case codes.PermissionDenied:
		d.kind, d.line = KindPermissionDenied, permissionDenied(f)
		return d
	}
	msg := d.message
	if d.code == codes.InvalidArgument {
		msg = invalidArgumentText(st, f.flagFor)
	}
	d.kind, d.line = KindRequest, requestFailed(d.code, msg, f)
	return d
}

// resolveReason says why a lookup failed, without repeating the host.
func resolveReason(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "no such host"
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout:
		return "the DNS lookup timed out"
	case errors.As(err, &dnsErr):
		return dnsErr.Err
	}
	return err.Error()
}

// remoteAlert extracts the alert text ("bad certificate") from an error message.
func remoteAlert(msg string) (string, bool) {
	_, after, ok := strings.Cut(msg, tlsAlertPrefix)
	if !ok {
		return "", false
	}
	end := strings.IndexAny(after, "\"\\,;)")
	if end >= 0 {
		after = after[:end]
	}
	return strings.TrimSpace(after), true
}

// clientCertRejected explains an alert the server sent about our certificate.
func clientCertRejected(alert string, f facts) (Kind, string) {
	name := certName(f)
	switch alert {
	case "certificate required":
		if f.leaf == nil {
			return KindNoClientCert, fmt.Sprintf("no client certificate was sent and the %s service requires one: pass --as NAME (for example --as alice) or --cert FILE --key FILE", f.service)
		}
		return KindNoClientCert, fmt.Sprintf("the %s service says no client certificate arrived, although bankctl sent %s; check that the file holds a certificate", f.service, name)
	case "unknown certificate authority":
		if f.leaf != nil && selfSigned(f.leaf) {
			return KindClientUntrusted, fmt.Sprintf("the %s service rejected %s because it is self-signed; it trusts only certificates issued by the bank CA: use one of those (for example --as alice)", f.service, name)
		}
		issuer := "another CA"
		if f.leaf != nil {
			issuer = fmt.Sprintf("%q", f.leaf.Issuer.String())
		}
		return KindClientUntrusted, fmt.Sprintf("the %s service does not trust the CA that issued %s (%s); use a certificate issued by the bank CA (for example --as alice)", f.service, name, issuer)
	case "expired certificate":
		return expiryRejected(f)
	case "revoked certificate":
		return KindClientRevoked, revokedLine(f)
	case "unsupported certificate":
		return KindClientUsage, usageLine(f)
	case "bad certificate", "certificate unknown", "access denied":
		return badCertificate(alert, f)
	case "protocol version not supported":
		return KindHandshake, fmt.Sprintf("the %s service refused our TLS version; it accepts TLS 1.3 only", f.service)
	}
	return KindHandshake, fmt.Sprintf("the %s service ended the TLS handshake with the alert %q; its log says why", f.service, alert)
}

// expiryRejected explains the "expired certificate" alert, which crypto/tls sends both
// for an expired certificate and for one not yet valid.
func expiryRejected(f facts) (Kind, string) {
	name := certName(f)
	if f.leaf != nil {
		switch {
		case f.now.After(f.leaf.NotAfter):
			return KindClientExpired, fmt.Sprintf("the %s service rejected %s: it expired on %s (%s ago); issue a new one%s or use another identity", f.service, name, stamp(f.leaf.NotAfter), ago(f.now.Sub(f.leaf.NotAfter)), reissueHint(f))
		case f.now.Before(f.leaf.NotBefore):
			return KindClientNotYetValid, fmt.Sprintf("the %s service rejected %s: it is not valid before %s (in %s); wait, check the clocks, or issue a new one%s", f.service, name, stamp(f.leaf.NotBefore), ago(f.leaf.NotBefore.Sub(f.now)), reissueHint(f))
		}
		return KindClientExpired, fmt.Sprintf("the %s service says %s is expired or not yet valid, but by this machine's clock it is valid from %s to %s: one of the two clocks is wrong", f.service, name, stamp(f.leaf.NotBefore), stamp(f.leaf.NotAfter))
	}
	return KindClientExpired, fmt.Sprintf("the %s service says our certificate is expired or not yet valid; issue a new one", f.service)
}

// badCertificate explains the catch-all alerts: crypto/tls sends "bad certificate" for
// every rejection by the server's own checks (revoked, CA as leaf, no usable SPIFFE ID)
// and for a wrong key usage, so the cause is looked for in what bankctl can see locally.
func badCertificate(alert string, f facts) (Kind, string) {
	name := certName(f)
	if f.leaf == nil {
		return KindClientRejected, fmt.Sprintf("the %s service rejected the TLS handshake (%s); pass a bank client certificate with --as NAME or --cert/--key", f.service, alert)
	}
	switch {
	case f.crl.Revoked(f.leaf):
		return KindClientRevoked, revokedLine(f)
	case f.leaf.IsCA:
		return KindClientIsCA, fmt.Sprintf("the %s service rejected %s because it is a CA certificate, not a leaf; present a client certificate issued by the bank CA", f.service, name)
	case !clientAuthAllowed(f.leaf):
		return KindClientUsage, usageLine(f)
	case len(f.leaf.URIs) != 1:
		return KindClientRejected, fmt.Sprintf("the %s service rejected %s: it carries %d URI SANs and the bank needs exactly one SPIFFE ID; use a certificate issued for one bank identity", f.service, name, len(f.leaf.URIs))
	}
	return KindClientRejected, fmt.Sprintf("the %s service rejected %s (%s): it may be revoked (bankctl has no CRL listing it), its SPIFFE ID may be outside the bank's trust domain, or its key too weak; the service's log names the reason", f.service, name, alert)
}

// serverCertProblem explains our own rejection of the server's certificate from the typed
// handshake error.
func serverCertProblem(err error, f facts) (Kind, string) {
	var (
		hostErr    x509.HostnameError
		unknownErr x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &hostErr):
		return KindServerName, fmt.Sprintf("the certificate of %s is for %s, not for %q; call it by one of those names (--addr, or --server-name NAME)", f.addr, certNames(hostErr.Certificate), hostErr.Host)
	case errors.As(err, &unknownErr):
		return KindServerUntrusted, serverUntrustedLine(unknownErr.Cert, f)
	case errors.As(err, &invalidErr) && invalidErr.Reason == x509.Expired:
		c := invalidErr.Cert
		if c != nil && f.now.After(c.NotAfter) {
			return KindServerInvalid, fmt.Sprintf("the certificate of the %s service at %s expired on %s; its operator must renew it (bin/certgen issue %s)", f.service, f.addr, stamp(c.NotAfter), f.service)
		}
		return KindServerInvalid, fmt.Sprintf("the certificate of the %s service at %s is not valid at this machine's time; check both clocks", f.service, f.addr)
	case errors.As(err, &invalidErr) && invalidErr.Reason == x509.IncompatibleUsage:
		return KindServerInvalid, fmt.Sprintf("the certificate of %s may not be used by a server (no serverAuth usage); its operator must issue a server certificate", f.addr)
	case errors.Is(err, tlsconfig.ErrRevoked):
		return KindServerInvalid, fmt.Sprintf("the certificate of %s is revoked; do not trust this server until its operator issues a new certificate", f.addr)
	case errors.Is(err, tlsconfig.ErrUnexpectedServer):
		return KindServerIdentity, serverIdentityLine(err.Error(), f)
	case errors.Is(err, identity.ErrNoSPIFFEID), errors.Is(err, identity.ErrMultipleIDs),
		errors.Is(err, identity.ErrNotSPIFFE), errors.Is(err, identity.ErrWrongTrustDomain):
		return KindServerIdentity, fmt.Sprintf("refusing the server at %s: its certificate carries no SPIFFE ID of the bank (%v), but the %s service must present %s; check --addr",
			f.addr, errors.Unwrap(err), f.service, f.serverID)
	}
	if unreachable(err.Error()) {
		return KindUnreachable, fmt.Sprintf("cannot reach the %s service at %s: nothing accepts connections there; start it (make run) or check --addr", f.service, f.addr)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return KindTimeout, fmt.Sprintf("the TLS handshake with %s did not finish within %s; check that it is a bank service, or raise --timeout", f.addr, f.timeout)
	}
	var recordErr tls.RecordHeaderError
	if errors.As(err, &recordErr) {
		return KindHandshake, fmt.Sprintf("%s does not speak TLS (is it a plaintext or HTTP endpoint?); check --addr", f.addr)
	}
	return KindHandshake, fmt.Sprintf("the TLS handshake with %s failed: %v", f.addr, err)
}

// serverCertProblemText is serverCertProblem for when only the status text survived.
func serverCertProblemText(msg string, f facts) (Kind, string, bool) {
	switch {
	case strings.Contains(msg, "x509: certificate is valid for"), strings.Contains(msg, "x509: certificate is not valid for any names"):
		return KindServerName, fmt.Sprintf("the certificate of %s is for other names than %q; call it by a name it carries (--addr, or --server-name NAME)", f.addr, f.serverName), true
	case strings.Contains(msg, "x509: certificate signed by unknown authority"):
		return KindServerUntrusted, serverUntrustedLine(nil, f), true
	case strings.Contains(msg, "x509: certificate has expired or is not yet valid"):
		return KindServerInvalid, fmt.Sprintf("the certificate of the %s service at %s is expired or not yet valid; its operator must renew it", f.service, f.addr), true
	case strings.Contains(msg, tlsconfig.ErrUnexpectedServer.Error()):
		return KindServerIdentity, serverIdentityLine(msg, f), true
	case strings.Contains(msg, "tls: first record does not look like a TLS handshake"):
		return KindHandshake, fmt.Sprintf("%s does not speak TLS (is it a plaintext or HTTP endpoint?); check --addr", f.addr), true
	}
	return "", "", false
}

// presentedRE finds the presented ID in the text of a tlsconfig.ErrUnexpectedServer error,
// "...: got ID, want ID": a SPIFFE ID has neither spaces nor commas.
var presentedRE = regexp.MustCompile(`got (\S+), want `)

// serverIdentityLine explains a server whose certificate, valid and for the right names,
// carries another SPIFFE ID than the service called must have.
func serverIdentityLine(msg string, f facts) string {
	m := presentedRE.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Sprintf("refusing the server at %s: it presents another SPIFFE ID than %s, which the %s service must present; check --addr (or --server-spiffe-id)",
			f.addr, f.serverID, f.service)
	}
	return fmt.Sprintf("refusing the server at %s: it presents %s, but the %s service must present %s; nothing was sent: check --addr (--server-spiffe-id names another identity to expect)",
		f.addr, m[1], f.service, f.serverID)
}

func serverUntrustedLine(c *x509.Certificate, f facts) string {
	issuer := ""
	if c != nil {
		issuer = fmt.Sprintf(" (its certificate was issued by %q)", c.Issuer.String())
	}
	return fmt.Sprintf("we do not trust the server at %s: its certificate is not issued by a CA in %s%s; pass the bank's CA bundle with --ca, or check --addr", f.addr, f.caPath, issuer)
}

// unreachable reports whether a transport error says nothing answered.
func unreachable(msg string) bool {
	for _, s := range []string{"connection refused", "no such host", "network is unreachable", "no route to host", "connection reset by peer", "produced zero addresses"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// reasonLine explains a refusal from the reason of its google.rpc.ErrorInfo (package
// refusal) and its metadata, rather than from the code, which several refusals share
// (PERMISSION_DENIED is both a policy's denial and a customer limit). It returns false
// for a reason it does not know, or one the code-based text explains as well.
func reasonLine(ei *errdetails.ErrorInfo, msg string, f facts) (string, bool) {
	md := ei.GetMetadata()
	method := shortMethod(f.method)
	switch ei.GetReason() {
	case refusal.CustomerPaymentLimitExceeded:
		return fmt.Sprintf("%s refused by the customers' per-payment limit: %s %s is above the limit of %s %s for one payment; nothing moved: pay less, in several payments, or ask a teller",
			method, md["amount"], md["currency"], md["max"], md["currency"]), true
	case refusal.CustomerDailyLimitExceeded:
		return fmt.Sprintf("%s refused by your rolling daily limit of %s %s per %s: %s %s of it remains and the payment is %s %s; nothing moved: pay at most what remains, or wait until earlier payments leave the window and order again with a new idempotency key",
			method, md["max"], md["currency"], md["window"], md["remaining"], md["currency"], md["amount"], md["currency"]), true
	case refusal.CurrencyNotAllowed:
		return fmt.Sprintf("%s refused: customers may not order payments in %s; nothing moved", method, md["currency"]), true
	case refusal.InsufficientFunds:
		return fmt.Sprintf("%s refused: the account to debit does not hold enough money (%s); nothing moved", method, msg), true
	case refusal.IdempotencyKeyReused:
		return fmt.Sprintf("%s refused: the idempotency key was already used for a different request; nothing changed: use a new key for a new request, or repeat the first request exactly", method), true
	case refusal.TransferVoided:
		return fmt.Sprintf("%s refused: the idempotency key was voided; nothing moved under it and nothing will: use a new key", method), true
	case refusal.SupplyLimitReached:
		return fmt.Sprintf("%s refused: the bank holds the most money it may in this currency, so deposits wait until money leaves; nothing moved", method), true
	case refusal.AccountNotFound:
		return fmt.Sprintf("%s refused: no such account (%s); check the id (bankctl accounts list)", method, msg), true
	case refusal.PaymentNotFound:
		return fmt.Sprintf("%s refused: no such payment (%s); check the id (bankctl payments list)", method, msg), true
	case refusal.ConcurrentRequest:
		return fmt.Sprintf("%s: another request with the same idempotency key ran at the same moment; repeat it with the same key to get that request's outcome", method), true
	case refusal.ServiceShuttingDown:
		return fmt.Sprintf("the %s service is shutting down; retry with the same idempotency key", f.service), true
	}
	return "", false
}

func permissionDenied(f facts) string {
	method := shortMethod(f.method)
	delegation := ""
	if f.onBehalfOf != "" {
		delegation = fmt.Sprintf("; note that we sent x-bank-on-behalf-of %s, which only a service allowed to delegate may send", f.onBehalfOf)
	}
	if f.seen != nil {
		roles := "no roles"
		if len(f.seen.GetRoles()) > 0 {
			roles = "roles: " + strings.Join(f.seen.GetRoles(), ", ")
		}
		return fmt.Sprintf("permission denied: the %s service knows you as %s (%s) and refuses %s for it (its role may not call it, or the resource is not yours)%s; use an identity that may, or ask for the policy to change", f.service, f.seen.GetSpiffeId(), roles, method, delegation)
	}
	seen := ""
	if f.seenErr != nil {
		seen = fmt.Sprintf(" (WhoAmI failed too: %s)", status.Convert(f.seenErr).Message())
	}
	return fmt.Sprintf("permission denied: the %s service refuses %s for %s%s%s; use an identity that may, or ask for the policy to change", f.service, method, certName(f), seen, delegation)
}

func requestFailed(code codes.Code, msg string, f facts) string {
	method := shortMethod(f.method)
	switch code {
	case codes.InvalidArgument:
		return fmt.Sprintf("%s refused the request as invalid: %s; fix the flag it names", method, msg)
	case codes.NotFound:
		return fmt.Sprintf("%s found nothing: %s; check the id (bankctl accounts list / payments list)", method, msg)
	case codes.FailedPrecondition:
		return fmt.Sprintf("%s cannot be done in the current state: %s; nothing changed", method, msg)
	case codes.AlreadyExists:
		return fmt.Sprintf("%s: it already exists: %s", method, msg)
	case codes.ResourceExhausted:
		return fmt.Sprintf("the %s service is rate-limiting you: %s; slow down and retry", f.service, msg)
	case codes.Unimplemented:
		return fmt.Sprintf("the server at %s does not serve %s; check --addr (is it the %s service?)", f.addr, method, f.service)
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return fmt.Sprintf("the %s service failed on %s: %s; its log has the detail", f.service, method, msg)
	}
	return fmt.Sprintf("%s failed: %s", method, msg)
}

func expiredLine(f facts) string {
	return fmt.Sprintf("our certificate %s expired on %s (%s ago); issue a new one%s or use another identity", certName(f), stamp(f.leaf.NotAfter), ago(f.now.Sub(f.leaf.NotAfter)), reissueHint(f))
}

func notYetValidLine(f facts) string {
	return fmt.Sprintf("our certificate %s is not valid before %s (in %s); wait, check this machine's clock, or issue a new one%s", certName(f), stamp(f.leaf.NotBefore), ago(f.leaf.NotBefore.Sub(f.now)), reissueHint(f))
}

func revokedLine(f facts) string {
	serial := ""
	if f.leaf != nil {
		serial = " (serial " + pki.SerialHex(f.leaf.SerialNumber) + ")"
	}
	src := ""
	if f.crl.Revoked(f.leaf) && f.crlPath != "" {
		src = ", listed in " + f.crlPath
	}
	return fmt.Sprintf("the %s service rejected %s because it is revoked%s%s; it cannot be used again: issue a new one%s", f.service, certName(f), serial, src, reissueHint(f))
}

func usageLine(f facts) string {
	usages := "none"
	if f.leaf != nil {
		usages = extKeyUsages(f.leaf)
	}
	return fmt.Sprintf("%s may not be used for client authentication (extended key usage: %s); use a client certificate (clientAuth)", certName(f), usages)
}

func reissueHint(f facts) string {
	if f.asName != "" {
		return fmt.Sprintf(" (bin/certgen issue %s)", f.asName)
	}
	return ""
}

// certName names our certificate for a person: its file and its SPIFFE ID.
func certName(f facts) string {
	if f.leaf == nil {
		return "our certificate"
	}
	name := f.certPath
	if name == "" {
		name = "our certificate"
	}
	if len(f.leaf.URIs) == 1 {
		return fmt.Sprintf("%s (%s)", name, f.leaf.URIs[0])
	}
	return name
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "other names"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no DNS name or IP address"
	}
	return strings.Join(names, ", ")
}

// selfSigned reports whether c is signed by its own key. CheckSignatureFrom would refuse
// a leaf as its own parent, so the signature is checked directly.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// clientAuthAllowed reports whether crypto/tls would accept c for client authentication:
// no extended key usage at all, clientAuth, or any.
func clientAuthAllowed(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func extKeyUsages(c *x509.Certificate) string {
	var out []string
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "clientAuth")
		case x509.ExtKeyUsageAny:
			out = append(out, "any")
		default:
			out = append(out, fmt.Sprintf("#%d", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// shortMethod turns "/bank.accounts.v1.AccountsService/OpenAccount" into
// "AccountsService/OpenAccount".
func shortMethod(full string) string {
	full = strings.TrimPrefix(full, "/")
	svc, m, ok := strings.Cut(full, "/")
	if !ok {
		return full
	}
	if i := strings.LastIndexByte(svc, '.'); i >= 0 {
		svc = svc[i+1:]
	}
	return svc + "/" + m
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// ago rounds a duration for a person.
func ago(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return fmt.Sprintf("%ds", int(d/time.Second))
}
