package analytics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"

	accesslogdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// AccessLogServer is Envoy's gRPC access-log service
// (envoy.service.accesslog.v3.AccessLogService): Envoy streams HTTP
// access-log entries, which the Joiner matches with decisions.
type AccessLogServer struct {
	accesslogv3.UnimplementedAccessLogServiceServer
	joiner *Joiner
	o      AccessLogOptions
}

// AccessLogOptions configure an AccessLogServer.
type AccessLogOptions struct {
	// AllowedPeers, when not empty, are the addresses streams may come
	// from: a stream whose peer (the address that connected to us) is in
	// none of them is refused before any entry is read, and counted in the
	// joiner's Metrics. Peers without an IP address (a Unix socket) are
	// refused too. Empty: every peer is accepted.
	AllowedPeers []netip.Prefix
}

// NewAccessLogServer returns the service for j.
func NewAccessLogServer(j *Joiner, o AccessLogOptions) *AccessLogServer {
	return &AccessLogServer{joiner: j, o: o}
}

// StreamAccessLogs receives entries until Envoy closes the stream.
func (s *AccessLogServer) StreamAccessLogs(stream accesslogv3.AccessLogService_StreamAccessLogsServer) error {
	if !s.peerAllowed(stream.Context()) {
		s.joiner.o.Metrics.accessLogRefused.Inc()
		return status.Error(codes.PermissionDenied, "this peer may not send access logs")
	}
	s.joiner.streamConnected()
	defer s.joiner.streamClosed()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&accesslogv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		for _, entry := range msg.GetHttpLogs().GetLogEntry() {
			s.joiner.AccessLog(upstreamOf(entry))
		}
	}
}

// peerAllowed reports whether the stream's peer is in AllowedPeers.
func (s *AccessLogServer) peerAllowed(ctx context.Context) bool {
	if len(s.o.AllowedPeers) == 0 {
		return true
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	addr, ok := peerIP(p.Addr)
	if !ok {
		return false
	}
	for _, prefix := range s.o.AllowedPeers {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// peerIP is the IP address of a connection's remote end, IPv4-mapped
// IPv6 addresses read as IPv4 so that IPv4 prefixes match them.
func peerIP(a net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("") // a prefix contains no address with a zone
	return ip, ip.IsValid()
}

// upstreamOf reads what the join needs from an HTTP access-log entry. The
// request id is cut as the decision's is (see Event), so that both still
// match, and so that a queued entry holds no more than that.
func upstreamOf(e *accesslogdata.HTTPAccessLogEntry) Upstream {
	u := Upstream{
		RequestID: clip(e.GetRequest().GetRequestId(), maxIDLen),
		Status:    int(e.GetResponse().GetResponseCode().GetValue()),
	}
	c := e.GetCommonProperties()
	if first, last := c.GetTimeToFirstUpstreamTxByte(), c.GetTimeToLastUpstreamRxByte(); first != nil && last != nil {
		u.Backend = last.AsDuration() - first.AsDuration()
		u.HasTiming = true
	}
	if total := c.GetTimeToLastDownstreamTxByte(); total != nil {
		u.Total = total.AsDuration()
	}
	return u
}
