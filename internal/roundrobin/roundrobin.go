package roundrobin

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// ServiceConfig is the load-balancing part of a gRPC service config: one
// subchannel per address, calls spread round robin over the ready ones. A
// replica whose connection breaks leaves the rotation at once and rejoins when
// it reconnects. Merge it into a service config that also has the method
// configs (retry policies) of the client.
const ServiceConfig = `"loadBalancingConfig": [{"round_robin": {}}]`

// listScheme is the scheme of the resolver of an address list. The resolver is
// registered on the one ClientConn (grpc.WithResolvers), never globally.
const listScheme = "replicas"

// Target returns the gRPC target for addrs and the dial options it needs:
//
//   - "host:port" is resolved by DNS (dns:///host:port): a name with several
//     addresses reaches each of them;
//   - a target with a scheme ("dns:///name:443", "passthrough:///x") is kept;
//   - "h1:p1,h2:p2,..." is a fixed list, served by a resolver of this
//     connection alone.
//
// The balancing itself is ServiceConfig's round_robin. The TLS server name and
// the server's identity are checked by the transport credentials on every
// connection, whichever address it goes to. Errors name the address at fault.
func Target(addrs string) (target string, opts []grpc.DialOption, err error) {
	parts := strings.Split(addrs, ",")
	if len(parts) == 1 {
		a := strings.TrimSpace(parts[0])
		if strings.Contains(a, "://") {
			return a, nil, nil
		}
		if err := checkHostPort(a); err != nil {
			return "", nil, err
		}
		return "dns:///" + a, nil, nil
	}
	seen := make(map[string]bool, len(parts))
	state := resolver.State{}
	for _, p := range parts {
		a := strings.TrimSpace(p)
		if strings.Contains(a, "://") {
			return "", nil, fmt.Errorf("%q: a list holds host:port addresses, not targets", a)
		}
		if err := checkHostPort(a); err != nil {
			return "", nil, err
		}
		if seen[a] {
			return "", nil, fmt.Errorf("%q is listed twice", a)
		}
		seen[a] = true
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r := manual.NewBuilderWithScheme(listScheme)
	r.InitialState(state)
	// The endpoint is only the :authority of the calls; the addresses come from r.
	return listScheme + ":///" + "replicas", []grpc.DialOption{grpc.WithResolvers(r)}, nil
}

// checkHostPort accepts host:port with a non-empty host and a port from 1 to 65535.
func checkHostPort(a string) error {
	if a == "" {
		return errors.New("empty address")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: want host:port", a)
	}
	if host == "" {
		return fmt.Errorf("%q: no host", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", a, port)
	}
	return nil
}
