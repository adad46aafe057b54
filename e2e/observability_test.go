package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// alsEntry is an HTTP access-log entry shaped like Envoy's.
func alsEntry(requestID string, status uint32, backend, total time.Duration) *accesslogdata.HTTPAccessLogEntry {
	return &accesslogdata.HTTPAccessLogEntry{
		CommonProperties: &accesslogdata.AccessLogCommon{
			TimeToLastRxByte:            durationpb.New(100 * time.Microsecond),
			TimeToFirstUpstreamTxByte:   durationpb.New(300 * time.Microsecond),
			TimeToLastUpstreamTxByte:    durationpb.New(310 * time.Microsecond),
			TimeToFirstUpstreamRxByte:   durationpb.New(300*time.Microsecond + backend - time.Millisecond),
			TimeToLastUpstreamRxByte:    durationpb.New(300*time.Microsecond + backend),
			TimeToFirstDownstreamTxByte: durationpb.New(total - 100*time.Microsecond),
			TimeToLastDownstreamTxByte:  durationpb.New(total),
			UpstreamCluster:             "outbound|8080||petstore.shop.svc.cluster.local",
		},
		ProtocolVersion: accesslogdata.HTTPAccessLogEntry_HTTP11,
		Request: &accesslogdata.HTTPRequestProperties{
			RequestMethod: corev3.RequestMethod_GET, Path: "/petstore/v1/pets", Authority: "api.example.com",
			RequestId: requestID, UserAgent: "curl/8.5.0",
		},
		Response: &accesslogdata.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(status)},
	}
}

func readEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestAccessLogJoin(t *testing.T) {
	eventsFile := filepath.Join(t.TempDir(), "events.jsonl")
	e := startEnforcer(t, petstoreConfig+"analytics: {events: "+eventsFile+"}\n")
	client := e.AuthClient()
	ctx := context.Background()

	// Envoy connects its access-log stream when it starts.
	stream, err := accesslogv3.NewAccessLogServiceClient(e.Dial()).StreamAccessLogs(ctx)
	must(t, err)
	identifier := &accesslogv3.StreamAccessLogsMessage_Identifier{
		Node: &corev3.Node{Id: "router~10.44.0.5~petstore-gw~shop.svc.cluster.local", Cluster: "petstore-gw"}, LogName: "tollgate"}
	send := func(entries ...*accesslogdata.HTTPAccessLogEntry) {
		must(t, stream.Send(&accesslogv3.StreamAccessLogsMessage{Identifier: identifier,
			LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}))
		identifier = nil // Envoy sends it with the first message only
	}
	send(alsEntry("warm-up", 200, time.Millisecond, 2*time.Millisecond))
	waitFor(t, "the stream", 10*time.Second, func() bool {
		return e.Metric("tollgate_accesslog_entries_total", "result", "unmatched") == 1
	})

	checkWithID := func(id, key string) {
		_, err := client.Check(ctx, check("GET", "/petstore/v1/pets?apikey="+key, map[string]string{
			"x-request-id": id, "user-agent": "curl/8.5.0"}, nil))
		must(t, err)
	}
	checkWithID("req-ok", keyMobile)
	checkWithID("req-5xx", keyMobile)
	checkWithID("req-denied", "tgk_wrong_key")
	send(alsEntry("req-ok", 200, 42*time.Millisecond, 45*time.Millisecond),
		alsEntry("req-5xx", 503, 7*time.Millisecond, 8*time.Millisecond))

	waitFor(t, "the joined metrics", 10*time.Second, func() bool {
		return e.Metric("tollgate_upstream_requests_total", "api", "petstore-v1", "status_class", "2xx") == 1 &&
			e.Metric("tollgate_upstream_requests_total", "api", "petstore-v1", "status_class", "5xx") == 1
	})
	if n := e.Metric("tollgate_upstream_duration_seconds", "api", "petstore-v1"); n != 2 {
		t.Errorf("upstream duration samples %v", n)
	}

	// A burst of entries for requests Tollgate never saw: counted, not kept.
	burst := make([]*accesslogdata.HTTPAccessLogEntry, 0, 500)
	for i := range 5000 {
		burst = append(burst, alsEntry("stranger-"+hex.EncodeToString([]byte{byte(i >> 8), byte(i)}), 200, time.Millisecond, time.Millisecond))
		if len(burst) == cap(burst) {
			send(burst...)
			burst = burst[:0]
		}
	}
	waitFor(t, "the burst to be counted", 20*time.Second, func() bool {
		return e.Metric("tollgate_accesslog_entries_total", "result", "unmatched")+
			max(e.Metric("tollgate_accesslog_entries_total", "result", "dropped"), 0) >= 5001
	})
	_ = stream.CloseSend()

	// Events: the denial at once, the allows completed with the upstream's answer.
	var events []map[string]any
	waitFor(t, "three events", 10*time.Second, func() bool {
		events = readEvents(t, eventsFile)
		return len(events) >= 3
	})
	byID := map[string]map[string]any{}
	for _, ev := range events {
		byID[ev["request_id"].(string)] = ev
	}
	ok, failed, denied := byID["req-ok"], byID["req-5xx"], byID["req-denied"]
	if ok == nil || failed == nil || denied == nil {
		t.Fatalf("events %v", events)
	}
	lat := ok["latency"].(map[string]any)
	if ok["upstream_status"] != 200.0 || ok["application"] != "mobile" || ok["decision"] != "allow" ||
		lat["backend_ms"] != 42.0 || lat["total_ms"] != 45.0 || lat["enforcer_ms"] == nil ||
		ok["path"] != "/petstore/v1/pets" || ok["user_agent"] != "curl/8.5.0" || ok["client_ip"] != "10.0.0.5" {
		t.Errorf("joined event %v", ok)
	}
	if failed["upstream_status"] != 503.0 {
		t.Errorf("5xx event %v", failed)
	}
	if denied["decision"] != "deny" || denied["code"] != "900901" || denied["upstream_status"] != nil {
		t.Errorf("denial event %v", denied)
	}
	// Neither the events nor the log hold a credential.
	raw, _ := os.ReadFile(eventsFile)
	for _, secret := range []string{keyMobile, "tgk_wrong_key"} {
		if bytes.Contains(raw, []byte(secret)) || strings.Contains(e.Logs(), secret) {
			t.Fatalf("credential %q written out", secret)
		}
	}
}

func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run scripts/test-deps.sh (installs Debian's prometheus package)")
	}
	e := startEnforcer(t, petstoreConfig)
	client := e.AuthClient()
	for _, key := range []string{keyMobile, "bad"} {
		_, err := client.Check(context.Background(), check("GET", "/petstore/v1/pets", map[string]string{"apikey": key}, nil))
		must(t, err)
	}
	resp, err := http.Get(e.AdminURL() + "/metrics")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, name := range []string{"tollgate_decisions_total", "tollgate_decision_duration_seconds_bucket",
		"tollgate_config_reloads_total", "tollgate_ratelimit_fallback", "grpc_server_handled_total", "go_goroutines"} {
		if !bytes.Contains(body, []byte("\n"+name)) {
			t.Errorf("%s missing from /metrics", name)
		}
	}
}

// otlpReceiver is an in-process OTLP/gRPC trace receiver.
type otlpReceiver struct {
	ptraceotlp.UnimplementedGRPCServer
	mu    sync.Mutex
	spans []ptrace.Span
}

func (r *otlpReceiver) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := req.Traces().ResourceSpans()
	for i := range rs.Len() {
		ss := rs.At(i).ScopeSpans()
		for j := range ss.Len() {
			spans := ss.At(j).Spans()
			for k := range spans.Len() {
				s := ptrace.NewSpan()
				spans.At(k).CopyTo(s)
				r.spans = append(r.spans, s)
			}
		}
	}
	return ptraceotlp.NewExportResponse(), nil
}

func (r *otlpReceiver) find(traceID string) (ptrace.Span, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.TraceID().String() == traceID {
			return s, true
		}
	}
	return ptrace.Span{}, false
}

func TestTracing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	receiver := &otlpReceiver{}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, receiver)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	e := startEnforcer(t, petstoreConfig+"tracing: {otlpEndpoint: http://"+l.Addr().String()+", sampleRatio: 0}\n")
	client := e.AuthClient()
	const (
		w3cTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
		w3cParent = "00f067aa0ba902b7"
		b3Trace   = "80f198ee56343ba864fe8b2a57d3eff7"
		b3Parent  = "e457b5a2e4d86bd1"
	)
	// W3C traceparent, sampled by the caller (the ratio 0 would sample none of its own).
	_, err = client.Check(context.Background(), check("GET", "/petstore/v1/pets", map[string]string{
		"apikey": keyMobile, "traceparent": "00-" + w3cTrace + "-" + w3cParent + "-01"}, nil))
	must(t, err)
	// B3, single header.
	_, err = client.Check(context.Background(), check("GET", "/petstore/v1/pets", map[string]string{
		"apikey": "wrong", "b3": b3Trace + "-" + b3Parent + "-1"}, nil))
	must(t, err)

	for _, want := range []struct{ trace, parent, decision, code string }{
		{w3cTrace, w3cParent, "allow", "200"},
		{b3Trace, b3Parent, "deny", "900901"},
	} {
		var span ptrace.Span
		waitFor(t, "the span of trace "+want.trace, 15*time.Second, func() bool {
			var ok bool
			span, ok = receiver.find(want.trace)
			return ok
		})
		attrs := span.Attributes()
		get := func(k string) string { v, _ := attrs.Get(k); return v.AsString() }
		if span.ParentSpanID().String() != want.parent || span.Name() != "tollgate.check" ||
			get("tollgate.api") != "petstore-v1" || get("tollgate.operation") != "/pets" ||
			get("tollgate.decision") != want.decision || get("tollgate.code") != want.code {
			t.Errorf("span %s parent %s attrs %v", span.Name(), span.ParentSpanID(), attrs.AsRaw())
		}
	}
}

// TestNoCredentialsInLogs sends every kind of credential at debug level
// and searches the whole log for them.
func TestNoCredentialsInLogs(t *testing.T) {
	e := startEnforcer(t, petstoreConfig)
	client := e.AuthClient()
	secrets := []string{keyMobile, "tgk_not_a_real_key_but_secret", "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"}
	for _, s := range secrets {
		for _, h := range []map[string]string{{"apikey": s}, {"authorization": s}} {
			_, err := client.Check(context.Background(), check("GET", "/petstore/v1/pets?apikey="+s, h, nil))
			must(t, err)
		}
	}
	logs := e.Logs()
	if !strings.Contains(logs, `"msg":"decision"`) {
		t.Fatal("no debug decision lines: the test would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) || regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.`).MatchString(logs) {
			t.Fatalf("the log holds a credential: %q", s)
		}
	}
}
