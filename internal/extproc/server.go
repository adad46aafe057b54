package extproc

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/internal/model"
)

// Options configure a Server.
type Options struct {
	Store  *model.Store
	Logger *slog.Logger // nil: discard
	// Registerer takes the server's metrics; nil: they are kept but not
	// registered.
	Registerer prometheus.Registerer
	// Client calls the interceptor services; nil: a pooled client of
	// Tollgate's own (NewClient).
	Client *http.Client
	// Panicked, if set, counts a message whose handling panicked.
	Panicked func()
}

// Server is the ExternalProcessor service: one Process stream per HTTP
// request.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	store    *model.Store
	log      *slog.Logger
	client   *http.Client
	metrics  *metrics
	panicked func()
}

// New returns a Server reading its config from o.Store.
func New(o Options) *Server {
	s := &Server{store: o.Store, log: o.Logger, client: o.Client, metrics: newMetrics(o.Registerer), panicked: o.Panicked}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = NewClient()
	}
	return s
}

// Register adds the service to a gRPC server.
func (s *Server) Register(r grpc.ServiceRegistrar) { extprocv3.RegisterExternalProcessorServer(r, s) }

// NewClient is the HTTP client interceptor services are called with: a
// bounded pool of kept-alive connections, no proxy from the environment,
// no redirects. Each call's deadline is its interceptor's timeout.
func NewClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:            (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           512,
			MaxIdleConnsPerHost:    128,
			MaxConnsPerHost:        512,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    5 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Process serves one stream: Envoy's messages for one HTTP request and its
// response, each answered in turn.
func (s *Server) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	st := &stream{s: s, ctx: srv.Context()}
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := st.handle(req)
		if resp == nil {
			return status.Error(codes.InvalidArgument, "a processing request without a message")
		}
		if req.GetObservabilityMode() {
			continue // Envoy ignores answers in this mode
		}
		if err := srv.Send(resp); err != nil {
			return err
		}
	}
}
