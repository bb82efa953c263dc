package grpcserver_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// nobodyID is a valid identity of the trust domain that the test policy gives no role.
const nobodyID = "spiffe://bank.local/intern/ivan"

// h2conn is a raw HTTP/2 client over a real mutual-TLS connection: the attacker's view,
// frame by frame, with none of grpc-go's client-side manners.
type h2conn struct {
	tls *tls.Conn
	fr  *http2.Framer
	buf bytes.Buffer
	enc *hpack.Encoder
	// settingsSent and settingsAcked count our SETTINGS frames and the server's ACKs.
	settingsSent, settingsAcked int
}

// rawH2 dials the harness ("tcp") presenting a fresh certificate for id, sends the
// client preface and an empty SETTINGS frame, and reads the server's SETTINGS.
func (h *harness) rawH2(tb testing.TB, id string) *h2conn {
	tb.Helper()
	leaf := h.pki.Client(tb, id)
	roots := x509.NewCertPool()
	for _, c := range h.pki.Bundle {
		roots.AddCert(c)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", h.addr, &tls.Config{
		Certificates: []tls.Certificate{leaf.TLSCertificate()},
		RootCAs:      roots,
		ServerName:   h.serverName,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	c := &h2conn{tls: conn, fr: http2.NewFramer(conn, conn)}
	c.enc = hpack.NewEncoder(&c.buf)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		tb.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		tb.Fatal(err)
	}
	c.settingsSent++
	return c
}

// headerBlock encodes a gRPC request's headers for method plus pad bytes of extra
// metadata (in fields of at most 8 KiB).
func (c *h2conn) headerBlock(tb testing.TB, method string, pad int) []byte {
	tb.Helper()
	c.buf.Reset()
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "https"},
		{Name: ":path", Value: method}, {Name: ":authority", Value: "localhost"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}
	for i := 0; pad > 0; i++ {
		n := min(pad, 8<<10)
		pad -= n
		fields = append(fields, hpack.HeaderField{Name: "x-pad-" + strconv.Itoa(i), Value: strings.Repeat("a", n), Sensitive: true})
	}
	for _, f := range fields {
		if err := c.enc.WriteField(f); err != nil {
			tb.Fatal(err)
		}
	}
	return append([]byte(nil), c.buf.Bytes()...)
}

// writeHeaders opens stream id with block, split into HEADERS and CONTINUATION frames of
// at most 16 KiB (the server's default SETTINGS_MAX_FRAME_SIZE), without END_STREAM.
func (c *h2conn) writeHeaders(id uint32, block []byte) error {
	const maxFrame = 16 << 10
	first := block[:min(len(block), maxFrame)]
	rest := block[len(first):]
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndHeaders: len(rest) == 0}); err != nil {
		return err
	}
	for len(rest) > 0 {
		n := min(len(rest), maxFrame)
		if err := c.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// sync sends an empty SETTINGS frame and reads frames until the server has
// acknowledged it: the server handles a connection's frames in order, so every frame
// written before has been processed then. (A PING would do too, but more than two of
// them within keepalive's minimum interval get the connection closed.) It returns what
// else came back (frame types and RST_STREAM codes) and whether the server went away
// (GOAWAY or EOF).
func (c *h2conn) sync(tb testing.TB) (seen map[string]int, gone bool) {
	tb.Helper()
	if err := c.fr.WriteSettings(); err != nil {
		return nil, true
	}
	c.settingsSent++
	seen = make(map[string]int)
	if err := c.tls.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	defer c.tls.SetReadDeadline(time.Time{})
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tb.Fatal("no SETTINGS ack from the server")
			}
			return seen, true
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			seen["RST_STREAM "+f.ErrCode.String()]++
		case *http2.SettingsFrame:
			if f.IsAck() {
				if c.settingsAcked++; c.settingsAcked == c.settingsSent {
					return seen, false
				}
			} else if err := c.fr.WriteSettingsAck(); err != nil {
				return seen, true
			}
		case *http2.GoAwayFrame:
			seen["GOAWAY "+f.ErrCode.String()]++
			return seen, true
		default:
			seen[f.Header().Type.String()]++
		}
	}
}

// grpcMessage is a length-prefixed gRPC message of a StringValue of n bytes.
func grpcMessage(tb testing.TB, n int) []byte {
	tb.Helper()
	b, err := proto.Marshal(wrapperspb.String(strings.Repeat("m", n)))
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

func itoa(n int) string { return strconv.Itoa(n) }

func fmtMap(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.Itoa(m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
