package server

import (
	"context"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/usage"
	"github.com/tollgate/tollgate/internal/xdssource"
)

// startUsage starts counting usage and reporting it to the control plane
// at cp.Address, over a connection of its own with the replica's TLS
// settings: reports outlive the xDS stream at shutdown, when the last
// requests' usage is sent after the servers have drained. stop, called
// once the analytics pipeline has let go of its last request, adds up
// what is queued, reports it and closes the connection.
func (r *replica) startUsage(cp config.ControlPlaneSettings) (agg *usage.Aggregator, stop func(), err error) {
	conn, err := xdssource.Dial(cp.Address, xdssource.TLS(cp.TLS))
	if err != nil {
		return nil, nil, err
	}
	metrics := usage.NewMetrics(r.metrics.Registry())
	agg = usage.NewAggregator(usage.AggregatorOptions{MaxRows: cp.Usage.MaxRows, Metrics: metrics})
	reporter := usage.NewReporter(usage.ReporterOptions{
		Source: agg, Sender: usage.NewClient(conn), Node: cp.Node,
		Interval: cp.Usage.Interval, MaxRetryRows: cp.Usage.MaxRows, Metrics: metrics,
		Log: r.log.With("source", "usage"),
	})
	aggCtx, stopAgg := context.WithCancel(context.Background())
	reportCtx, stopReports := context.WithCancel(context.Background())
	reported := make(chan struct{})
	go agg.Run(aggCtx)
	go func() {
		defer close(reported)
		reporter.Run(reportCtx)
	}()
	return agg, func() {
		stopAgg()
		agg.Wait()
		stopReports()
		<-reported
		_ = conn.Close()
	}, nil
}
