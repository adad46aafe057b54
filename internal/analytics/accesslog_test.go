package analytics

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	accesslogdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// serveAccessLogs serves s on a free loopback port and returns a client.
func serveAccessLogs(t *testing.T, s *AccessLogServer) accesslogv3.AccessLogServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	accesslogv3.RegisterAccessLogServiceServer(srv, s)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); srv.Stop(); <-served })
	return accesslogv3.NewAccessLogServiceClient(conn)
}

func httpLogs(ids ...string) *accesslogv3.StreamAccessLogsMessage {
	var entries []*accesslogdata.HTTPAccessLogEntry
	for _, id := range ids {
		entries = append(entries, &accesslogdata.HTTPAccessLogEntry{Request: &accesslogdata.HTTPRequestProperties{RequestId: id}})
	}
	return &accesslogv3.StreamAccessLogsMessage{
		Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{LogName: "tollgate"},
		LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}},
	}
}

func TestAccessLogAllowedPeers(t *testing.T) {
	cases := []struct {
		name    string
		allowed []netip.Prefix
		refused bool
	}{
		{"any peer", nil, false},
		{"loopback allowed", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}, false},
		{"loopback not allowed", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics()
			j := NewJoiner(JoinOptions{Metrics: m}) // not run: its entry queue is read here
			client := serveAccessLogs(t, NewAccessLogServer(j, AccessLogOptions{AllowedPeers: tc.allowed}))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			stream, err := client.StreamAccessLogs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sendErr := stream.Send(httpLogs("r1", "r2"))
			if !tc.refused {
				if sendErr != nil {
					t.Fatal(sendErr)
				}
				waitUntil(t, "the entries and the stream", func() bool {
					return len(j.entries) == 2 && testutil.ToFloat64(m.accessLogStreams) == 1 && j.Wants()
				})
			}
			_, err = stream.CloseAndRecv()
			if tc.refused && status.Code(err) != codes.PermissionDenied {
				t.Fatalf("stream ended with %v, want PermissionDenied", err)
			}
			if !tc.refused && err != nil {
				t.Fatalf("stream ended with %v", err)
			}
			waitUntil(t, "the stream to be gone", func() bool { return testutil.ToFloat64(m.accessLogStreams) == 0 })

			wantEntries, wantRefused := 2, 0.0
			if tc.refused {
				wantEntries, wantRefused = 0, 1
			}
			if len(j.entries) != wantEntries {
				t.Errorf("%d entries queued, want %d", len(j.entries), wantEntries)
			}
			if got := testutil.ToFloat64(m.accessLogRefused); got != wantRefused {
				t.Errorf("refused %v, want %v", got, wantRefused)
			}
			if j.Wants() {
				t.Error("decisions still wanted with no stream and no sink")
			}
		})
	}
}

// otherAddr is a peer address of a type peerIP does not know.
type otherAddr string

func (a otherAddr) Network() string { return "other" }
func (a otherAddr) String() string  { return string(a) }

func TestPeerIP(t *testing.T) {
	cases := []struct {
		name   string
		addr   net.Addr
		want   string
		wantOK bool
	}{
		{"IPv4", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5000}, "127.0.0.1", true},
		{"IPv4-mapped IPv6", &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 5000}, "10.1.2.3", true},
		{"IPv6 with a zone", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0", Port: 5000}, "fe80::1", true},
		{"other address with IP and port", otherAddr("10.9.8.7:80"), "10.9.8.7", true},
		{"Unix socket", &net.UnixAddr{Name: "/run/envoy.sock", Net: "unix"}, "", false},
		{"none", nil, "", false},
	}
	for _, tc := range cases {
		got, ok := peerIP(tc.addr)
		if ok != tc.wantOK || ok && got.String() != tc.want {
			t.Errorf("%s: peerIP = %v, %v; want %s, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

// TestUpstreamOfBoundsRequestID: an entry keeps no more of its request id
// than an event does, and the two still match.
func TestUpstreamOfBoundsRequestID(t *testing.T) {
	id := strings.Repeat("x", 1<<20)
	u := upstreamOf(&accesslogdata.HTTPAccessLogEntry{Request: &accesslogdata.HTTPRequestProperties{RequestId: id}})
	if len(u.RequestID) != maxIDLen || u.RequestID != clip(id, maxIDLen) {
		t.Fatalf("request id of %d bytes kept", len(u.RequestID))
	}
}
