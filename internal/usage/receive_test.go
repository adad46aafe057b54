package usage

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/analytics"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// The hand-written service names what the .proto file declares.
func TestServiceMatchesTheProto(t *testing.T) {
	svc := tollgatev1.File_tollgate_v1_usage_proto.Services().Get(0)
	if string(svc.FullName()) != serviceName {
		t.Fatalf("service %s, want %s", svc.FullName(), serviceName)
	}
	m := svc.Methods().ByName("Report")
	if m == nil || svc.Methods().Len() != 1 || serviceDesc.Methods[0].MethodName != string(m.Name()) ||
		m.Input().FullName() != (&tollgatev1.UsageReport{}).ProtoReflect().Descriptor().FullName() ||
		m.Output().FullName() != (&tollgatev1.UsageReportAck{}).ProtoReflect().Descriptor().FullName() {
		t.Fatalf("methods of %s do not match the descriptor", serviceName)
	}
	if len(classes) != len(Classes) || len(classNames) != len(classes) ||
		len(classes) != tollgatev1.StatusClass(0).Descriptor().Values().Len()-1 {
		t.Fatal("the classes and the proto's enum differ")
	}
}

// memorySink keeps rows, or fails.
type memorySink struct {
	mu   sync.Mutex
	err  error
	rows []Row
}

func (s *memorySink) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *memorySink) stored() []Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Row(nil), s.rows...)
}

func (s *memorySink) AddUsage(_ context.Context, rows []Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.rows = append(s.rows, rows...)
	return nil
}

// serve runs a receiver on a loopback port and returns a client of it.
func serve(t *testing.T, sink Sink) *Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	Register(s, NewReceiver(ReceiverOptions{Sink: sink, Now: func() time.Time { return t0 }}))
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewClient(conn)
}

// An aggregator and a reporter on one side, a receiver on the other, over
// real gRPC: rows arrive as they were added; a sink that fails makes the
// reporter keep them and send them again.
func TestReportOverGRPC(t *testing.T) {
	sink := &memorySink{}
	client := serve(t, sink)
	agg := NewAggregator(AggregatorOptions{})
	r := NewReporter(ReporterOptions{Source: agg, Sender: client, Node: "r1"})
	ctx := context.Background()

	agg.Add(req(t0, "mobile", "petstore", analytics.Class2xx, 2*time.Millisecond))
	agg.Add(req(t0, "mobile", "petstore", analytics.ClassThrottled, 0))
	sink.fail(errors.New("database away"))
	if err := r.Flush(ctx); status.Code(err) != codes.Unavailable {
		t.Fatalf("a failing sink: %v, want Unavailable", err)
	}
	sink.fail(nil)
	agg.Add(req(t0, "mobile", "petstore", analytics.Class2xx, time.Millisecond))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Key{t0.Unix(), "mobile", "petstore", analytics.Class2xx}, Counts{2, 3000}},
		{Key{t0.Unix(), "mobile", "petstore", analytics.ClassThrottled}, Counts{1, 0}},
	}
	if got := sink.stored(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("stored %+v, want %+v", got, want)
	}

	// Too many rows, or a bad one: refused whole.
	big := &tollgatev1.UsageReport{}
	for i := range MaxReportRows + 1 {
		big.Rows = append(big.Rows, &tollgatev1.UsageRow{Minute: t0.Unix() - int64(i)*60, Class: tollgatev1.StatusClass_STATUS_CLASS_2XX, Requests: 1})
	}
	if _, err := client.Report(ctx, big); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("%d rows: %v, want InvalidArgument", len(big.Rows), err)
	}
	bad := &tollgatev1.UsageReport{Rows: []*tollgatev1.UsageRow{{Minute: t0.Unix() + 7, Class: tollgatev1.StatusClass_STATUS_CLASS_2XX, Requests: 1}}}
	if _, err := client.Report(ctx, bad); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "minute") {
		t.Fatalf("an unaligned minute: %v, want InvalidArgument", err)
	}
	if got := sink.stored(); len(got) != 2 {
		t.Fatalf("a refused report stored rows: %+v", got)
	}
}

func TestRowsOf(t *testing.T) {
	ok := func() *tollgatev1.UsageRow {
		return &tollgatev1.UsageRow{Minute: t0.Unix(), Application: "mobile", Api: "petstore",
			Class: tollgatev1.StatusClass_STATUS_CLASS_4XX, Requests: 2, LatencySumUs: 10}
	}
	with := func(f func(*tollgatev1.UsageRow)) *tollgatev1.UsageRow { r := ok(); f(r); return r }
	cases := []struct {
		name string
		rows []*tollgatev1.UsageRow
		want string // a part of the error; "" for none
	}{
		{"valid", []*tollgatev1.UsageRow{ok()}, ""},
		{"an anonymous caller, no API", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Application, r.Api = "", "" })}, ""},
		{"no rows", nil, ""},
		{"no class", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Class = 0 })}, "rows[0].class"},
		{"an unknown class", []*tollgatev1.UsageRow{ok(), with(func(r *tollgatev1.UsageRow) { r.Class = 42 })}, "rows[1].class"},
		{"minute zero", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Minute = 0 })}, "minute"},
		{"negative minute", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Minute = -60 })}, "minute"},
		{"within the clock's margin", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Minute += 3600 })}, ""},
		{"far ahead", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Minute += 3660 })}, "ahead"},
		{"a long application", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Application = strings.Repeat("a", 257) })}, "256 bytes"},
		{"a long API", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Api = strings.Repeat("a", 257) })}, "256 bytes"},
		{"no requests", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Requests = 0 })}, "requests"},
		{"too many requests", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.Requests = 1 << 41 })}, "requests"},
		{"too much latency", []*tollgatev1.UsageRow{with(func(r *tollgatev1.UsageRow) { r.LatencySumUs = 1 << 49 })}, "latency"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RowsOf(&tollgatev1.UsageReport{Rows: tc.rows}, t0)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
		})
	}
	rows, err := RowsOf(&tollgatev1.UsageReport{Rows: []*tollgatev1.UsageRow{ok(), ok()}}, t0)
	if err != nil || len(rows) != 1 || rows[0].Requests != 4 || rows[0].LatencySumUS != 20 || rows[0].Class != analytics.Class4xx {
		t.Fatalf("two rows of one key: %+v, %v; want them added", rows, err)
	}
}

// FuzzRowsOf: whatever a peer sends, checking it never panics, and what
// passes is within the bounds the store relies on.
func FuzzRowsOf(f *testing.F) {
	seed, _ := proto.Marshal(&tollgatev1.UsageReport{Node: "r1", Rows: []*tollgatev1.UsageRow{
		{Minute: t0.Unix(), Application: "mobile", Api: "petstore", Class: tollgatev1.StatusClass_STATUS_CLASS_THROTTLED, Requests: 3, LatencySumUs: 99},
		{Minute: t0.Unix(), Application: "mobile", Api: "petstore", Class: tollgatev1.StatusClass_STATUS_CLASS_THROTTLED, Requests: 1},
	}})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var in tollgatev1.UsageReport
		if proto.Unmarshal(data, &in) != nil {
			return
		}
		rows, err := RowsOf(&in, t0)
		if err != nil {
			return
		}
		seen := map[Key]bool{}
		for _, r := range rows {
			if seen[r.Key] || r.Minute <= 0 || r.Minute%60 != 0 || r.Requests == 0 || int64(r.Requests) < 0 ||
				int64(r.LatencySumUS) < 0 || len(r.Application) > maxIDBytes || len(r.API) > maxIDBytes || classes[r.Class] == 0 {
				t.Fatalf("a row out of bounds passed: %+v", r)
			}
			seen[r.Key] = true
		}
	})
}
