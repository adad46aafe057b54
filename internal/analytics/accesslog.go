package analytics

import (
	"errors"
	"io"

	accesslogdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
)

// AccessLogServer is Envoy's gRPC access-log service
// (envoy.service.accesslog.v3.AccessLogService): Envoy streams HTTP
// access-log entries, which the Joiner matches with decisions.
type AccessLogServer struct {
	accesslogv3.UnimplementedAccessLogServiceServer
	joiner *Joiner
}

// NewAccessLogServer returns the service for j.
func NewAccessLogServer(j *Joiner) *AccessLogServer { return &AccessLogServer{joiner: j} }

// StreamAccessLogs receives entries until Envoy closes the stream.
func (s *AccessLogServer) StreamAccessLogs(stream accesslogv3.AccessLogService_StreamAccessLogsServer) error {
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

// upstreamOf reads what the join needs from an HTTP access-log entry.
func upstreamOf(e *accesslogdata.HTTPAccessLogEntry) Upstream {
	u := Upstream{
		RequestID: e.GetRequest().GetRequestId(),
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
