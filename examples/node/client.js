#!/usr/bin/env node
// A Node.js client of the mtlsbank services over mutual TLS (@grpc/grpc-js).
//
// It asks WhoAmI, opens an account for alice and one for bob and funds alice's as the
// teller, pays bob as alice through the payments service, then shows one refusal of each
// kind: a certificate the bank does not accept, a call the policy denies, an invalid
// argument, and two business refusals with their machine-readable reason
// (google.rpc.ErrorInfo, decoded from the grpc-status-details-bin trailer).
//
//   cd examples/node && npm ci && node client.js      # against `make run`
//
// The .proto files are loaded at run time (@grpc/proto-loader): nothing is generated.
// Each step prints one line, "STEP (as WHO): RESULT key=value ...". The exit status is 0
// when every step went as the bank says it should, 1 otherwise.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const REPO = path.resolve(__dirname, '..', '..');
// The API, and the google.rpc status and error details the client decodes.
const INCLUDE_DIRS = [path.join(REPO, 'proto'), path.join(REPO, 'examples', 'proto')];
const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const DEADLINE_MS = 15000;
const ALICE = 'spiffe://bank.local/customer/alice';
const BOB = 'spiffe://bank.local/customer/bob';
// The SPIFFE ID each service's certificate must carry, besides the server name.
const SERVICE_IDS = {
  accounts: 'spiffe://bank.local/service/accounts',
  payments: 'spiffe://bank.local/service/payments',
};

function parseFlags() {
  const { values } = parseArgs({
    options: {
      accounts: { type: 'string', default: 'localhost:50051' },
      payments: { type: 'string', default: 'localhost:50052' },
      certs: { type: 'string', default: path.join(REPO, 'certs', 'dev') },
      'server-name': { type: 'string', default: 'localhost' },
    },
  });
  return values;
}

// loadAPI loads the bank's services from proto/ at run time. keepCase keeps the proto's
// field names (from_account_id); int64 values (minor_units) arrive as strings, so no
// amount is ever rounded by a JavaScript number.
function loadAPI() {
  const def = protoLoader.loadSync(
    ['bank/identity/v1/identity.proto', 'bank/accounts/v1/accounts.proto', 'bank/payments/v1/payments.proto'],
    { includeDirs: INCLUDE_DIRS, keepCase: true, longs: String, enums: String, defaults: true },
  );
  return grpc.loadPackageDefinition(def).bank;
}

// loadStatusTypes loads google.rpc.Status, ErrorInfo and BadRequest with protobufjs, the
// library proto-loader itself uses, to decode the grpc-status-details-bin trailer.
function loadStatusTypes() {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of INCLUDE_DIRS) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return target; // google/protobuf/*.proto: bundled with protobufjs
  };
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return root;
}

// Bank makes the clients of the two services, one connection per identity, each over
// mutual TLS.
class Bank {
  constructor(flags, api) {
    this.flags = flags;
    this.api = api;
    this.ca = fs.readFileSync(path.join(flags.certs, 'ca.crt'));
  }

  // credentials presents the certificate of the dev identity `name`, trusts the bank's CA
  // only (`ca` replaces Node's default roots), speaks TLS 1.3 only, and accepts the
  // server's certificate only if it is valid for --server-name and carries the SPIFFE ID
  // of `service`.
  credentials(name, service) {
    const read = (f) => fs.readFileSync(path.join(this.flags.certs, f));
    const context = tls.createSecureContext({
      ca: this.ca,
      cert: read(`${name}.crt`), // leaf + intermediate
      key: read(`${name}.key`),
      minVersion: 'TLSv1.3',
    });
    const want = SERVICE_IDS[service];
    return grpc.credentials.createFromSecureContext(context, {
      checkServerIdentity: (hostname, cert) => {
        const err = tls.checkServerIdentity(hostname, cert);
        if (err) return err;
        // subjectaltname is "DNS:localhost, URI:spiffe://..."; compare whole entries.
        const uris = (cert.subjectaltname || '').split(', ').filter((s) => s.startsWith('URI:'));
        if (uris.length !== 1 || uris[0] !== `URI:${want}`) {
          return new Error(`server certificate carries ${uris.join(' ') || 'no URI SAN'}, want ${want}`);
        }
        return undefined;
      },
    });
  }

  client(Service, service, name) {
    const address = this.flags[service];
    return new Service(address, this.credentials(name, service), {
      'grpc.ssl_target_name_override': this.flags['server-name'], // the name checked, whatever the address
    });
  }
}

// call makes a unary call with a deadline and returns a promise of its response.
function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + DEADLINE_MS }, (err, response) =>
      err ? reject(err) : resolve(response));
  });
}

// statusDetails decodes the google.rpc.Status of a failed call from its trailers: the
// ErrorInfo (or null) and the fields of a BadRequest.
function statusDetails(root, err) {
  let info = null;
  const fields = [];
  const Status = root.lookupType('google.rpc.Status');
  for (const bin of (err.metadata && err.metadata.get(STATUS_DETAILS_KEY)) || []) {
    for (const detail of Status.decode(bin).details) {
      const typeName = detail.type_url.slice(detail.type_url.lastIndexOf('/') + 1);
      if (typeName === 'google.rpc.ErrorInfo') {
        info = root.lookupType(typeName).decode(detail.value);
      } else if (typeName === 'google.rpc.BadRequest') {
        for (const v of root.lookupType(typeName).decode(detail.value).field_violations) fields.push(v.field);
      }
    }
  }
  return { info, fields };
}

function describeError(root, err) {
  const words = [grpc.status[err.code] || `CODE_${err.code}`];
  const { info, fields } = statusDetails(root, err);
  if (info) {
    words.push(`reason=${info.reason}`, `domain=${info.domain}`);
    for (const k of Object.keys(info.metadata).sort()) words.push(`meta.${k}=${info.metadata[k]}`);
  } else {
    words.push('reason=none');
  }
  for (const f of fields) words.push(`field=${f}`);
  words.push(`message=${JSON.stringify(err.details || '')}`);
  return words.join(' ');
}

const eur = (minor) => ({ currency_code: 'EUR', minor_units: String(minor) });

// fmt formats a Money with two decimals (the example uses EUR only), exactly.
function fmt(m) {
  const minor = BigInt(m.minor_units);
  return `${minor / 100n}.${String(minor % 100n).padStart(2, '0')} ${m.currency_code}`;
}

async function main() {
  const flags = parseFlags();
  const api = loadAPI();
  const root = loadStatusTypes();
  const bank = new Bank(flags, api);
  const key = crypto.randomUUID(); // this run's idempotency keys
  let failed = false;
  const ok = (step, who, words) => console.log(`${step} (as ${who}): OK ${words}`);
  const unexpected = (step, who, what) => {
    console.log(`${step} (as ${who}): UNEXPECTED ${what}`);
    failed = true;
  };

  const { IdentityService } = api.identity.v1;
  const { AccountsService } = api.accounts.v1;
  const { PaymentsService } = api.payments.v1;
  const tellerAccounts = bank.client(AccountsService, 'accounts', 'teller');
  const aliceAccounts = bank.client(AccountsService, 'accounts', 'alice');
  const alicePayments = bank.client(PaymentsService, 'payments', 'alice');

  // 1. Who does the accounts service say we are?
  try {
    const who = await call(bank.client(IdentityService, 'accounts', 'teller'), 'WhoAmI', {});
    ok('whoami', 'teller', `spiffe_id=${who.spiffe_id} roles=${who.roles.join(',')} serial=${who.serial}`);
  } catch (err) {
    unexpected('whoami', 'teller', describeError(root, err));
    return 1;
  }

  // 2. The teller opens an account for alice and one for bob, and funds alice's.
  const accounts = {};
  for (const owner of [ALICE, BOB]) {
    try {
      const { account } = await call(tellerAccounts, 'OpenAccount',
        { owner, currency: 'EUR', display_name: 'node example' });
      accounts[owner] = account.id;
      ok('open-account', 'teller', `account=${account.id} owner=${account.owner} currency=${account.currency}`);
    } catch (err) {
      unexpected('open-account', 'teller', describeError(root, err));
      return 1;
    }
  }
  try {
    const { transaction } = await call(tellerAccounts, 'Deposit', {
      account_id: accounts[ALICE], amount: eur(10000), idempotency_key: `node-${key}-deposit`, reference: 'node example',
    });
    ok('deposit', 'teller', `account=${accounts[ALICE]} amount=${fmt(transaction.amount)} transaction=${transaction.id}`);
  } catch (err) {
    unexpected('deposit', 'teller', describeError(root, err));
    return 1;
  }

  // 3. Alice pays bob through the payments service, which moves the money by calling the
  // accounts service as itself on her behalf.
  const pay = (minor, suffix) => call(alicePayments, 'CreatePayment', {
    from_account_id: accounts[ALICE], to_account_id: accounts[BOB], amount: eur(minor),
    idempotency_key: `node-${key}-${suffix}`, memo: 'node example',
  });
  try {
    const { payment } = await pay(2500, 'pay');
    const status = payment.status.replace(/^PAYMENT_STATUS_/, '');
    ok('pay', 'alice', `payment=${payment.id} status=${status} amount=${fmt(payment.amount)} to=${payment.to_account_id}`);
  } catch (err) {
    unexpected('pay', 'alice', describeError(root, err));
    return 1;
  }

  // 4. Refusals, one of each kind. Each must fail; what it says is printed.
  const refusal = async (step, who, attempt) => {
    try {
      await attempt();
      unexpected(step, who, 'the call succeeded');
    } catch (err) {
      console.log(`${step} (as ${who}): ${describeError(root, err)}`);
    }
  };
  // A certificate the bank does not accept (expired) is refused in the TLS handshake: the
  // call never reaches the service, and grpc-js reports UNAVAILABLE with the TLS alert.
  await refusal('refused-certificate', 'expired',
    () => call(bank.client(IdentityService, 'accounts', 'expired'), 'WhoAmI', {}));
  // The policy lets only tellers open accounts: PERMISSION_DENIED, generic, no ErrorInfo.
  await refusal('permission-denied', 'alice',
    () => call(aliceAccounts, 'OpenAccount', { owner: ALICE, currency: 'EUR' }));
  // A zero amount: INVALID_ARGUMENT with an ErrorInfo and a BadRequest naming the field.
  await refusal('invalid-argument', 'alice', () => pay(0, 'zero'));
  // More than alice holds (75.00 EUR left): FAILED_PRECONDITION, INSUFFICIENT_FUNDS.
  await refusal('insufficient-funds', 'alice', () => pay(50000, 'too-much'));
  // Above the customers' per-payment limit: PERMISSION_DENIED with an ErrorInfo
  // (CUSTOMER_PAYMENT_LIMIT_EXCEEDED, metadata max), unlike the policy's denial.
  await refusal('over-limit', 'alice', () => pay(150000, 'over-limit'));

  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (err) => {
  console.error(`client.js: ${err.stack || err}`);
  process.exit(1);
});
