package usage

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Sink keeps reported usage: the store, or Discard.
type Sink interface {
	AddUsage(ctx context.Context, rows []Row) error
}

// Discard keeps nothing: a control plane with a file source has nowhere
// to keep usage, and accepts reports so that replicas do not retry them.
var Discard Sink = discard{}

type discard struct{}

func (discard) AddUsage(context.Context, []Row) error { return nil }

// Bounds of one row, beyond which a report is refused. Ids are cut to
// 256 bytes by the replica's analytics; the counts leave room for years
// of additions to one row in a signed 64-bit column.
const (
	maxIDBytes      = 256
	maxRowRequests  = 1 << 40
	maxRowLatencyUS = 1 << 48
	// maxFuture is how far ahead of the control plane's clock a minute
	// may be: replicas' clocks differ a little.
	maxFuture = time.Hour
)

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	Sink Sink
	Log  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Receiver serves UsageService: it checks each report and hands its rows
// to the sink.
type Receiver struct {
	o ReceiverOptions
}

// NewReceiver returns a receiver.
func NewReceiver(o ReceiverOptions) *Receiver {
	if o.Sink == nil {
		o.Sink = Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Receiver{o: o}
}

// Report implements ReportHandler. An invalid report is refused whole
// with InvalidArgument; a sink that fails is Unavailable, so that the
// replica sends the report again.
func (r *Receiver) Report(ctx context.Context, in *tollgatev1.UsageReport) (*tollgatev1.UsageReportAck, error) {
	rows, err := RowsOf(in, r.o.Now())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := r.o.Sink.AddUsage(ctx, rows); err != nil {
		if ctx.Err() == nil {
			r.o.Log.Error("usage report not stored", "node", clipNode(in.GetNode()), "rows", len(rows), "error", err.Error())
		}
		return nil, status.Error(codes.Unavailable, "usage not stored; send it again")
	}
	return &tollgatev1.UsageReportAck{Rows: uint32(len(rows))}, nil
}

// RowsOf checks a report against now and returns its rows, those with
// the same key added together, in key order.
func RowsOf(in *tollgatev1.UsageReport, now time.Time) ([]Row, error) {
	if n := len(in.GetRows()); n > MaxReportRows {
		return nil, fmt.Errorf("%d rows: a report holds at most %d", n, MaxReportRows)
	}
	latest := MinuteOf(now.Add(maxFuture))
	rows := make([]Row, 0, len(in.GetRows()))
	for i, p := range in.GetRows() {
		class, ok := classNames[p.GetClass()]
		switch {
		case !ok:
			return nil, fmt.Errorf("rows[%d].class: not a status class", i)
		case p.GetMinute() <= 0 || p.GetMinute()%60 != 0:
			return nil, fmt.Errorf("rows[%d].minute: want the Unix seconds of a minute's start", i)
		case p.GetMinute() > latest:
			return nil, fmt.Errorf("rows[%d].minute: more than %v ahead of the control plane's clock", i, maxFuture)
		case len(p.GetApplication()) > maxIDBytes || len(p.GetApi()) > maxIDBytes:
			return nil, fmt.Errorf("rows[%d]: application and api are at most %d bytes", i, maxIDBytes)
		case p.GetRequests() == 0 || p.GetRequests() > maxRowRequests:
			return nil, fmt.Errorf("rows[%d].requests: want 1 to %d", i, uint64(maxRowRequests))
		case p.GetLatencySumUs() > maxRowLatencyUS:
			return nil, fmt.Errorf("rows[%d].latencySumUs: at most %d", i, uint64(maxRowLatencyUS))
		}
		rows = append(rows, Row{
			Key:    Key{Minute: p.GetMinute(), Application: p.GetApplication(), API: p.GetApi(), Class: class},
			Counts: Counts{Requests: p.GetRequests(), LatencySumUS: p.GetLatencySumUs()},
		})
	}
	return Merge(rows), nil
}

func clipNode(node string) string {
	if len(node) > maxIDBytes {
		return node[:maxIDBytes]
	}
	return node
}
