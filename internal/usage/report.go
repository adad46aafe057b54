package usage

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// DefaultInterval is how often a replica reports (controlPlane.usage.interval).
const DefaultInterval = 10 * time.Second

// Sender sends one report: a Client, or a fake in tests.
type Sender interface {
	Report(ctx context.Context, in *tollgatev1.UsageReport, opts ...grpc.CallOption) (*tollgatev1.UsageReportAck, error)
}

// Source hands over the rows to report: an Aggregator.
type Source interface {
	Take() []Row
}

// ReporterOptions configure a Reporter.
type ReporterOptions struct {
	Source Source
	Sender Sender
	Node   string
	// Interval between reports (default DefaultInterval).
	Interval time.Duration
	// MaxRetryRows bounds the rows kept to be sent again after a failure
	// (default DefaultMaxRows); rows that find no room are dropped and
	// counted.
	MaxRetryRows int
	// Timeout bounds one report (default 10s).
	Timeout time.Duration
	// FinalTimeout bounds the last report, when Run stops (default 5s).
	FinalTimeout time.Duration
	Metrics      *Metrics // nil: counted nowhere
	Log          *slog.Logger
}

// Reporter sends the source's rows to the control plane every interval.
// Rows it could not send wait in its retry buffer, merged by key with
// what comes next, so an outage costs memory only up to MaxRetryRows.
// Reports are sent at least once: one whose answer was lost is sent
// again.
type Reporter struct {
	o       ReporterOptions
	retry   batch // owned by Run (or the caller of Flush)
	failing bool
}

// NewReporter returns a reporter; Run must be started.
func NewReporter(o ReporterOptions) *Reporter {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxRetryRows <= 0 {
		o.MaxRetryRows = DefaultMaxRows
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.FinalTimeout <= 0 {
		o.FinalTimeout = 5 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Reporter{o: o, retry: batch{}}
}

// Run reports every interval until ctx is done, then once more with what
// is left (within FinalTimeout), and returns. The source should have
// stopped taking requests by then, or what it takes after is lost.
func (r *Reporter) Run(ctx context.Context) {
	tick := time.NewTicker(r.o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), r.o.FinalTimeout)
			if err := r.Flush(final); err != nil {
				r.o.Log.Warn("usage not reported at shutdown", "rows", len(r.retry), "error", err.Error())
				r.o.Metrics.drop(DroppedShutdown, r.pendingRequests())
			}
			cancel()
			return
		case <-tick.C:
			_ = r.Flush(ctx)
		}
	}
}

// Pending returns how many rows wait to be sent again.
func (r *Reporter) Pending() int { return len(r.retry) }

// Flush takes the source's rows and sends them with those waiting from
// earlier failures, in reports of at most MaxReportRows. A report that
// fails ends the flush: it and the rest wait for the next. A report the
// control plane refuses as invalid is dropped and counted. Flush must
// not run concurrently with Run.
func (r *Reporter) Flush(ctx context.Context) error {
	for _, row := range r.o.Source.Take() {
		if !r.retry.add(row.Key, row.Counts, r.o.MaxRetryRows) {
			r.o.Metrics.drop(DroppedRetryFull, row.Requests)
		}
	}
	rows := r.retry.rows()
	for len(rows) > 0 {
		n := min(len(rows), MaxReportRows)
		chunk := rows[:n]
		rows = rows[n:]
		err := r.send(ctx, chunk)
		switch {
		case err == nil:
			r.o.Metrics.report("success")
		case status.Code(err) == codes.InvalidArgument:
			r.o.Metrics.report("refused")
			r.o.Metrics.drop(DroppedRefused, requests(chunk))
			r.o.Log.Error("the control plane refused a usage report; its rows are dropped", "rows", len(chunk), "error", err.Error())
		default:
			r.o.Metrics.report("failure")
			if !r.failing {
				r.o.Log.Warn("usage not reported; kept to be sent again", "rows", len(r.retry), "error", err.Error())
			}
			r.failing = true
			return err
		}
		for _, row := range chunk {
			delete(r.retry, row.Key)
		}
		if err == nil && r.failing {
			r.failing = false
			r.o.Log.Info("usage reported again")
		}
	}
	return nil
}

func (r *Reporter) send(ctx context.Context, rows []Row) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	_, err := r.o.Sender.Report(ctx, &tollgatev1.UsageReport{Node: r.o.Node, Rows: toProto(rows)})
	return err
}

func (r *Reporter) pendingRequests() uint64 {
	var n uint64
	for _, c := range r.retry {
		n += c.Requests
	}
	return n
}

func requests(rows []Row) uint64 {
	var n uint64
	for _, r := range rows {
		n += r.Requests
	}
	return n
}
