#!/usr/bin/env python3
"""A Python client of the mtlsbank services over mutual TLS (grpcio).

It asks WhoAmI, opens an account for alice and one for bob and funds alice's
as the teller, pays bob as alice through the payments service, then shows one
refusal of each kind: a certificate the bank does not accept, a call the
policy denies, an invalid argument, and two business refusals with their
machine-readable reason (google.rpc.ErrorInfo, decoded from the
grpc-status-details-bin trailer).

    /usr/bin/python3 examples/python/generate.py     # the stubs, into examples/python/gen/
    /usr/bin/python3 examples/python/client.py       # against `make run`

Each step prints one line, "STEP (as WHO): RESULT key=value ...". The exit
status is 0 when every step went as the bank says it should, 1 otherwise.
"""

import argparse
import json
import pathlib
import sys
import uuid

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent

# The services' status codes the example expects (the gRPC code names).
OK = "OK"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
DEADLINE_SECONDS = 15


def parse_args(argv):
    parser = argparse.ArgumentParser(description="mtlsbank example client (Python, grpcio)")
    parser.add_argument("--accounts", default="localhost:50051", help="accounts service address")
    parser.add_argument("--payments", default="localhost:50052", help="payments service address")
    parser.add_argument("--certs", default=str(REPO / "certs" / "dev"),
                        help="the dev PKI that certgen (make certs) writes: ca.crt and NAME.crt/NAME.key")
    parser.add_argument("--server-name", default="localhost",
                        help="the name the services' certificates must carry (checked, whatever the address)")
    parser.add_argument("--gen", default=str(HERE / "gen"), help="the stubs that generate.py wrote")
    return parser.parse_args(argv)


def import_stubs(gen):
    """Imports grpc and the generated modules, or exits with what to do."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        sys.exit(f"client.py: {sys.executable} has no grpc module: apt-get install python3-grpcio "
                 "python3-grpc-tools and run /usr/bin/python3 (a pyenv or venv Python does not see "
                 "Debian's packages), or pip install grpcio grpcio-tools")
    if not (pathlib.Path(gen) / "bank").is_dir():
        sys.exit(f"client.py: no generated stubs in {gen}: run {sys.executable} {HERE / 'generate.py'} first")
    sys.path.insert(0, str(gen))


class Bank:
    """Channels to the two services, one per identity, each over mutual TLS."""

    def __init__(self, args):
        import grpc
        self.grpc = grpc
        self.args = args
        self.ca = (pathlib.Path(args.certs) / "ca.crt").read_bytes()

    def channel(self, address, name):
        """A channel to address that presents the certificate of the dev identity name.

        The bank's CA is the only root (root_certificates replaces the default
        roots), and the server's certificate must be valid for --server-name
        whatever the address (grpc.ssl_target_name_override). grpcio's Python
        API has no TLS version setting: the connection is TLS 1.3 because the
        bank's services accept nothing older.
        """
        grpc = self.grpc
        certs = pathlib.Path(self.args.certs)
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca,
            private_key=(certs / f"{name}.key").read_bytes(),
            certificate_chain=(certs / f"{name}.crt").read_bytes(),  # leaf + intermediate
        )
        options = [("grpc.ssl_target_name_override", self.args.server_name)]
        return grpc.secure_channel(address, creds, options=options)


def status_details(err):
    """Decodes the google.rpc.Status of a failed call from its trailers.

    Returns (ErrorInfo or None, [(field, description)] of a BadRequest).
    """
    from google.rpc import error_details_pb2, status_pb2

    info, violations = None, []
    for key, value in err.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY:
            continue
        st = status_pb2.Status.FromString(value)
        for detail in st.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [(v.field, v.description) for v in bad.field_violations]
    return info, violations


def describe_error(err):
    """The key=value words of a refusal: code, reason, domain, metadata, fields, message."""
    words = [err.code().name]
    info, violations = status_details(err)
    if info is not None:
        words.append(f"reason={info.reason}")
        words.append(f"domain={info.domain}")
        words += [f"meta.{k}={v}" for k, v in sorted(info.metadata.items())]
    else:
        words.append("reason=none")
    words += [f"field={field}" for field, _ in violations]
    words.append(f"message={json.dumps(err.details() or '')}")
    return " ".join(words)


def money(minor, currency="EUR"):
    from bank.type.v1 import money_pb2
    return money_pb2.Money(currency_code=currency, minor_units=minor)


def fmt(m):
    """Formats a Money of a currency with two decimals (the example uses EUR only)."""
    return f"{m.minor_units // 100}.{m.minor_units % 100:02d} {m.currency_code}"


class Run:
    """Runs the steps and remembers whether each went as expected."""

    def __init__(self):
        self.failed = False

    def ok(self, step, who, words):
        print(f"{step} (as {who}): OK {words}", flush=True)

    def refused(self, step, who, err):
        print(f"{step} (as {who}): {describe_error(err)}", flush=True)

    def unexpected(self, step, who, what):
        print(f"{step} (as {who}): UNEXPECTED {what}", flush=True)
        self.failed = True


def main(argv):
    args = parse_args(argv)
    import_stubs(args.gen)
    import grpc
    from bank.accounts.v1 import accounts_pb2, accounts_pb2_grpc
    from bank.identity.v1 import identity_pb2, identity_pb2_grpc
    from bank.payments.v1 import payments_pb2, payments_pb2_grpc

    bank = Bank(args)
    run = Run()
    key = uuid.uuid4().hex  # this run's idempotency keys
    alice_id = "spiffe://bank.local/customer/alice"
    bob_id = "spiffe://bank.local/customer/bob"

    teller_accounts = accounts_pb2_grpc.AccountsServiceStub(bank.channel(args.accounts, "teller"))
    alice_accounts = accounts_pb2_grpc.AccountsServiceStub(bank.channel(args.accounts, "alice"))
    alice_payments = payments_pb2_grpc.PaymentsServiceStub(bank.channel(args.payments, "alice"))

    # 1. Who does the accounts service say we are?
    try:
        who = identity_pb2_grpc.IdentityServiceStub(bank.channel(args.accounts, "teller")).WhoAmI(
            identity_pb2.WhoAmIRequest(), timeout=DEADLINE_SECONDS)
        run.ok("whoami", "teller", f"spiffe_id={who.spiffe_id} roles={','.join(who.roles)} serial={who.serial}")
    except grpc.RpcError as err:
        run.unexpected("whoami", "teller", describe_error(err))
        return 1

    # 2. The teller opens an account for alice and one for bob, and funds alice's.
    accounts = {}
    for owner in (alice_id, bob_id):
        try:
            acc = teller_accounts.OpenAccount(accounts_pb2.OpenAccountRequest(
                owner=owner, currency="EUR", display_name="python example"), timeout=DEADLINE_SECONDS).account
            accounts[owner] = acc.id
            run.ok("open-account", "teller", f"account={acc.id} owner={acc.owner} currency={acc.currency}")
        except grpc.RpcError as err:
            run.unexpected("open-account", "teller", describe_error(err))
            return 1
    try:
        tx = teller_accounts.Deposit(accounts_pb2.DepositRequest(
            account_id=accounts[alice_id], amount=money(10000), idempotency_key=f"py-{key}-deposit",
            reference="python example"), timeout=DEADLINE_SECONDS).transaction
        run.ok("deposit", "teller", f"account={accounts[alice_id]} amount={fmt(tx.amount)} transaction={tx.id}")
    except grpc.RpcError as err:
        run.unexpected("deposit", "teller", describe_error(err))
        return 1

    # 3. Alice pays bob through the payments service, which moves the money by
    # calling the accounts service as itself on her behalf.
    def pay(minor, suffix):
        return alice_payments.CreatePayment(payments_pb2.CreatePaymentRequest(
            from_account_id=accounts[alice_id], to_account_id=accounts[bob_id], amount=money(minor),
            idempotency_key=f"py-{key}-{suffix}", memo="python example"), timeout=DEADLINE_SECONDS).payment

    try:
        p = pay(2500, "pay")
        status = payments_pb2.PaymentStatus.Name(p.status).removeprefix("PAYMENT_STATUS_")
        run.ok("pay", "alice", f"payment={p.id} status={status} amount={fmt(p.amount)} to={p.to_account_id}")
    except grpc.RpcError as err:
        run.unexpected("pay", "alice", describe_error(err))
        return 1

    # 4. Refusals, one of each kind. Each must fail; what it says is printed.
    def refusal(step, who, call):
        try:
            call()
        except grpc.RpcError as err:
            run.refused(step, who, err)
        else:
            run.unexpected(step, who, "the call succeeded")

    # A certificate the bank does not accept (expired) is refused in the TLS
    # handshake: the call never reaches the service, and grpcio reports
    # UNAVAILABLE. The TLS alert that says why is only in grpcio's log (see
    # the README: GRPC_VERBOSITY=debug GRPC_TRACE=secure_endpoint,tsi).
    refusal("refused-certificate", "expired", lambda: identity_pb2_grpc.IdentityServiceStub(
        bank.channel(args.accounts, "expired")).WhoAmI(identity_pb2.WhoAmIRequest(), timeout=DEADLINE_SECONDS))
    # The policy lets only tellers open accounts: PERMISSION_DENIED, generic, no ErrorInfo.
    refusal("permission-denied", "alice", lambda: alice_accounts.OpenAccount(accounts_pb2.OpenAccountRequest(
        owner=alice_id, currency="EUR"), timeout=DEADLINE_SECONDS))
    # A zero amount: INVALID_ARGUMENT with an ErrorInfo and a BadRequest naming the field.
    refusal("invalid-argument", "alice", lambda: pay(0, "zero"))
    # More than alice holds (75.00 EUR left): FAILED_PRECONDITION, INSUFFICIENT_FUNDS.
    refusal("insufficient-funds", "alice", lambda: pay(50000, "too-much"))
    # Above the customers' per-payment limit: PERMISSION_DENIED with an ErrorInfo
    # (CUSTOMER_PAYMENT_LIMIT_EXCEEDED, metadata max), unlike the policy's denial.
    refusal("over-limit", "alice", lambda: pay(150000, "over-limit"))

    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
