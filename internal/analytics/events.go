package analytics

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"time"
)

// Event is one analytics record: a decision, completed with the upstream's
// answer when Envoy's access log for the same request arrives. The JSON
// field names are a stable interface: fields may be added, never renamed.
//
// An event outlives the check it describes (it waits for its access log,
// then for the writer), so its strings are copies, never substrings of the
// request, and each is cut to a fixed length (at a UTF-8 boundary) so that
// what a caller sends cannot grow what is kept. The limits, in bytes:
//
//	method 16; request_id, api_version, credential_type, key_id, code 128;
//	host, subject, application, api, user_agent 256; path, operation 1024.
//
// Those of frontend, decision and client_ip are fixed by their format.
type Event struct {
	Timestamp      time.Time `json:"timestamp"`
	RequestID      string    `json:"request_id,omitempty"`
	Frontend       string    `json:"frontend"`
	API            string    `json:"api,omitempty"`
	APIVersion     string    `json:"api_version,omitempty"`
	Operation      string    `json:"operation,omitempty"`
	Method         string    `json:"method"`
	Host           string    `json:"host,omitempty"`
	Path           string    `json:"path"` // normalised, without the query (it may hold credentials)
	Application    string    `json:"application,omitempty"`
	Subject        string    `json:"subject,omitempty"`
	CredentialType string    `json:"credential_type,omitempty"`
	KeyID          string    `json:"key_id,omitempty"` // the API key's id, never the key
	ClientIP       string    `json:"client_ip,omitempty"`
	UserAgent      string    `json:"user_agent,omitempty"`
	Decision       string    `json:"decision"` // allow | deny
	Code           string    `json:"code"`     // deny code; 200 for allow
	UpstreamStatus int       `json:"upstream_status,omitempty"`
	// Policies name the policies the request ran: request.setHeader,
	// response.addHeader, rule, cors.preflight, interceptor.request, ...
	// in the order they ran (README, "Policies").
	Policies []string `json:"policies,omitempty"`
	Latency  Latency  `json:"latency"`

	// status is a denial's HTTP status, which usage reads (a 429 is
	// throttled); events do not show it: code says more.
	status int
}

// Latency of the request, in milliseconds. Backend and total come from
// Envoy's access log and are absent when no entry was joined.
type Latency struct {
	EnforcerMS float64  `json:"enforcer_ms"`
	BackendMS  *float64 `json:"backend_ms,omitempty"`
	TotalMS    *float64 `json:"total_ms,omitempty"`
}

// Length limits of the event's strings, in bytes (see Event).
const (
	maxMethodLen = 16
	maxIDLen     = 128 // request_id, api_version, credential_type, key_id, code
	maxNameLen   = 256 // host, subject, application, api, user_agent
	maxPathLen   = 1024
)

// Sink writes events as JSON lines from its own goroutine. Emit never
// blocks: when the buffer is full the event is dropped and counted.
type Sink struct {
	events      chan *Event
	out         io.Writer
	dropped     func()
	writeFailed func(error)
	done        chan struct{}
}

// SinkOptions configure a Sink.
type SinkOptions struct {
	Buffer      int         // events queued for the writer; default 8192
	Dropped     func()      // called for each event that did not fit; may be nil
	WriteFailed func(error) // called for each failed write or flush; may be nil
}

// NewSinkWithOptions writes to out. Run must be started.
func NewSinkWithOptions(out io.Writer, o SinkOptions) *Sink {
	if o.Buffer <= 0 {
		o.Buffer = 8192
	}
	if o.Dropped == nil {
		o.Dropped = func() {}
	}
	if o.WriteFailed == nil {
		o.WriteFailed = func(error) {}
	}
	return &Sink{events: make(chan *Event, o.Buffer), out: out, dropped: o.Dropped, writeFailed: o.WriteFailed,
		done: make(chan struct{})}
}

// NewSink writes to out; dropped is called for each event that did not
// fit. Write errors are not reported: NewSinkWithOptions can.
func NewSink(out io.Writer, buffer int, dropped func()) *Sink {
	return NewSinkWithOptions(out, SinkOptions{Buffer: buffer, Dropped: dropped})
}

// Emit queues e, or drops it if the writer is behind.
func (s *Sink) Emit(e *Event) {
	select {
	case s.events <- e:
	default:
		s.dropped()
	}
}

// Run writes events until ctx is done, then writes what is queued and
// returns. Lines are flushed whenever the queue runs empty.
func (s *Sink) Run(ctx context.Context) {
	defer close(s.done)
	w := bufio.NewWriterSize(s.out, 64<<10)
	enc := json.NewEncoder(w)
	// A bufio.Writer keeps its first error for good; resetting it after a
	// failure loses the lines it held but lets writing resume once the
	// output recovers (a full disk freed, say).
	failed := func(err error) {
		s.writeFailed(err)
		w.Reset(s.out)
	}
	write := func(e *Event) {
		if err := enc.Encode(e); err != nil {
			failed(err)
		}
	}
	flush := func() {
		if err := w.Flush(); err != nil {
			failed(err)
		}
	}
	for {
		select {
		case e := <-s.events:
			write(e)
			if len(s.events) == 0 {
				flush()
			}
		case <-ctx.Done():
			for {
				select {
				case e := <-s.events:
					write(e)
				default:
					flush()
					return
				}
			}
		}
	}
}

// Wait returns once Run has returned.
func (s *Sink) Wait() { <-s.done }
