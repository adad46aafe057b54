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
	ClientIP       string    `json:"client_ip,omitempty"`
	UserAgent      string    `json:"user_agent,omitempty"`
	Decision       string    `json:"decision"` // allow | deny
	Code           string    `json:"code"`     // deny code; 200 for allow
	UpstreamStatus int       `json:"upstream_status,omitempty"`
	Latency        Latency   `json:"latency"`
}

// Latency of the request, in milliseconds. Backend and total come from
// Envoy's access log and are absent when no entry was joined.
type Latency struct {
	EnforcerMS float64  `json:"enforcer_ms"`
	BackendMS  *float64 `json:"backend_ms,omitempty"`
	TotalMS    *float64 `json:"total_ms,omitempty"`
}

// Sink writes events as JSON lines from its own goroutine. Emit never
// blocks: when the buffer is full the event is dropped and counted.
type Sink struct {
	events  chan *Event
	out     io.Writer
	dropped func()
	done    chan struct{}
}

// NewSink writes to out; dropped is called for each event that did not
// fit. Run must be started.
func NewSink(out io.Writer, buffer int, dropped func()) *Sink {
	return &Sink{events: make(chan *Event, buffer), out: out, dropped: dropped, done: make(chan struct{})}
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
	write := func(e *Event) { _ = enc.Encode(e) }
	for {
		select {
		case e := <-s.events:
			write(e)
			if len(s.events) == 0 {
				_ = w.Flush()
			}
		case <-ctx.Done():
			for {
				select {
				case e := <-s.events:
					write(e)
				default:
					_ = w.Flush()
					return
				}
			}
		}
	}
}

// Wait returns once Run has returned.
func (s *Sink) Wait() { <-s.done }
