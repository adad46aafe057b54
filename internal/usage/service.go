package usage

import (
	"context"

	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/internal/analytics"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// The service as proto/tollgate/v1/usage.proto names it (a test holds
// these to the file's descriptor).
const (
	serviceName  = "tollgate.v1.UsageService"
	reportMethod = "/" + serviceName + "/Report"
)

// MaxReportRows bounds the rows of one report: a reporter sends more in
// several, and a receiver refuses a bigger one.
const MaxReportRows = 10000

// ReportHandler serves UsageService.
type ReportHandler interface {
	Report(context.Context, *tollgatev1.UsageReport) (*tollgatev1.UsageReportAck, error)
}

// Register serves UsageService with h on s.
func Register(s grpc.ServiceRegistrar, h ReportHandler) { s.RegisterService(&serviceDesc, h) }

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*ReportHandler)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Report", Handler: handleReport}},
	Metadata:    "tollgate/v1/usage.proto",
}

func handleReport(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(tollgatev1.UsageReport)
	if err := dec(in); err != nil {
		return nil, err
	}
	h := srv.(ReportHandler)
	if interceptor == nil {
		return h.Report(ctx, in)
	}
	return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: reportMethod},
		func(ctx context.Context, req any) (any, error) { return h.Report(ctx, req.(*tollgatev1.UsageReport)) })
}

// Client calls UsageService.
type Client struct{ cc grpc.ClientConnInterface }

// NewClient calls UsageService over cc.
func NewClient(cc grpc.ClientConnInterface) *Client { return &Client{cc: cc} }

// Report sends one report.
func (c *Client) Report(ctx context.Context, in *tollgatev1.UsageReport, opts ...grpc.CallOption) (*tollgatev1.UsageReportAck, error) {
	out := new(tollgatev1.UsageReportAck)
	if err := c.cc.Invoke(ctx, reportMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

// classes map the classes to the protocol's and back.
var (
	classes = map[string]tollgatev1.StatusClass{
		analytics.Class2xx:       tollgatev1.StatusClass_STATUS_CLASS_2XX,
		analytics.Class3xx:       tollgatev1.StatusClass_STATUS_CLASS_3XX,
		analytics.Class4xx:       tollgatev1.StatusClass_STATUS_CLASS_4XX,
		analytics.Class5xx:       tollgatev1.StatusClass_STATUS_CLASS_5XX,
		analytics.ClassThrottled: tollgatev1.StatusClass_STATUS_CLASS_THROTTLED,
	}
	classNames = func() map[tollgatev1.StatusClass]string {
		m := make(map[tollgatev1.StatusClass]string, len(classes))
		for name, c := range classes {
			m[c] = name
		}
		return m
	}()
)

// Classes are the status classes, in the order a table shows them.
var Classes = []string{analytics.Class2xx, analytics.Class3xx, analytics.Class4xx, analytics.Class5xx, analytics.ClassThrottled}

// toProto is rows as a report's.
func toProto(rows []Row) []*tollgatev1.UsageRow {
	out := make([]*tollgatev1.UsageRow, len(rows))
	for i, r := range rows {
		out[i] = &tollgatev1.UsageRow{Minute: r.Minute, Application: r.Application, Api: r.API, Class: classes[r.Class],
			Requests: r.Requests, LatencySumUs: r.LatencySumUS}
	}
	return out
}
