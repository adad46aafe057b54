// Package usage counts requests per application, API, status class and
// minute, with the sum of their latencies, on each replica, and reports
// them to the control plane, which keeps them for the developer portal's
// charts (GET /api/v1/usage).
//
// On a replica, an Aggregator is the analytics pipeline's usage recorder:
// the pipeline hands it each request once it is final (a denial at once,
// an allow with its upstream's status from Envoy's access log), and it
// only queues, so a check never waits on it; its own goroutine adds the
// queue into rows. What it holds is bounded by a number of distinct rows,
// and what does not fit is dropped and counted
// (tollgate_usage_dropped_total), never an application's id in a label.
// A Reporter takes the rows every interval and sends them over gRPC
// (UsageService, proto/tollgate/v1/usage.proto); rows that could not be
// sent are merged into a bounded retry buffer and sent with the next.
//
// On the control plane, a Receiver checks each report and hands its rows
// to a Sink: the store, or nothing with a file source.
//
// The service is small enough that its gRPC plumbing is written here
// rather than generated (scripts/proto.sh generates messages only).
package usage
