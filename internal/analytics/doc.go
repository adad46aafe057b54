// Package analytics is what Tollgate reports about its decisions.
//
//   - Metrics: the Prometheus registry (README, "Metrics"), fed through Recorder,
//     which the decision pipeline calls once per check.
//   - Events: one JSON line per decision. A Joiner holds allowed decisions
//     briefly until Envoy's access-log entry for the same request id arrives
//     (AccessLogServer), completes them with the upstream's status and
//     latencies, and hands them to a Sink, which writes from its own
//     goroutine. Every queue is bounded and drops (and counts) rather than
//     delay a decision, and an event's strings are copies cut to fixed
//     lengths, so memory is bounded by configuration, not by what callers
//     send. AccessLogOptions.AllowedPeers limits who may send access logs.
//   - Usage: each request, once final, to a UsageRecorder (usage that a
//     replica reports to its control plane): from its event, completed
//     with the upstream's status when joined, or straight from the
//     decision when no event is wanted, which then costs no allocation.
//   - Tracing: a span per check, continuing the caller's trace.
package analytics
