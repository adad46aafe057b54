package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/internal/store"
)

// Options configure the admin API.
type Options struct {
	Store *store.Store
	Auth  *Authenticator
	Log   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// BaseDir is where relative file paths in resources are checked from
	// (cp.yaml's directory, as for a file source).
	BaseDir string
	// MaxBodyBytes bounds a request body (default 1 MiB); an OpenAPI
	// import may be up to MaxImportBytes (default 4 MiB), a resource
	// import up to MaxTransferBytes (default 64 MiB).
	MaxBodyBytes, MaxImportBytes, MaxTransferBytes int64
	// RegenerateGrace is how long a regenerated key's predecessor keeps
	// working when the request names no grace (default 24h).
	RegenerateGrace time.Duration
}

// Server is the admin REST API under /api/v1.
type Server struct {
	o   Options
	st  *store.Store
	log *slog.Logger
	now func() time.Time
	mux *http.ServeMux
}

// New builds the API's routes.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxImportBytes <= 0 {
		o.MaxImportBytes = 4 << 20
	}
	if o.MaxTransferBytes <= 0 {
		o.MaxTransferBytes = 64 << 20
	}
	if o.RegenerateGrace <= 0 {
		o.RegenerateGrace = 24 * time.Hour
	}
	s := &Server{o: o, st: o.Store, log: o.Log, now: o.Now, mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// call is one authenticated request.
type call struct {
	r      *http.Request
	caller Caller
	body   []byte
}

type handler func(w http.ResponseWriter, c *call) error

// handle registers a route: the caller is authenticated, a body is read
// within its bound, and any error is answered in the one error shape.
func (s *Server) handle(pattern string, h handler) {
	s.handleLimited(pattern, s.o.MaxBodyBytes, h)
}

func (s *Server) handleLimited(pattern string, limit int64, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		caller, aerr := s.authenticate(r)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		c := &call{r: r, caller: caller}
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if err != nil {
				writeError(w, invalid("cannot read the request body"))
				return
			}
			if int64(len(body)) > limit {
				writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
					Message: fmt.Sprintf("the request body is over %d bytes", limit)})
				return
			}
			c.body = body
		}
		if err := h(w, c); err != nil {
			writeError(w, asError(err, s.log))
		}
	})
}

// callerKey carries a caller already identified inside the control plane
// (the portal's signed-in user). Only code in this process can set it:
// nothing a client sends reaches a context value.
type callerKey struct{}

// AsCaller makes an in-process request act for c, under the same rules
// as that caller's own requests.
func AsCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func (s *Server) authenticate(r *http.Request) (Caller, *Error) {
	if c, ok := r.Context().Value(callerKey{}).(Caller); ok && c.Role != "" {
		return c, nil
	}
	return s.o.Auth.Authenticate(r)
}

// Authorized wraps a handler of the control plane's own (replicas,
// status) in the admin API's authentication: admins and publishers only.
func (s *Server) Authorized(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, aerr := s.o.Auth.Authenticate(r)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		if !caller.publisher() {
			writeError(w, forbidden("admins and publishers only"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// result is what a write answers.
type result struct {
	status int
	body   any
	etag   int64 // the record's version, 0 for none
	// remembered, if set, is kept for an Idempotency-Key replay in place
	// of body: a new key's secret is never stored.
	remembered any
}

// maxIdempotencyKey bounds an Idempotency-Key.
const maxIdempotencyKey = 200

// commit runs a write in one transaction. A POST with an Idempotency-Key
// that this caller used before gets the first answer again (the same
// request) or 422 (a different one), without writing anything.
func (s *Server) commit(w http.ResponseWriter, c *call, fn func(tx *store.Tx) (result, error)) error {
	key := c.r.Header.Get("Idempotency-Key")
	if key != "" && (c.r.Method != http.MethodPost || len(key) > maxIdempotencyKey || !ValidOwner(key)) {
		return invalid("Idempotency-Key: up to 200 printable characters, on POST")
	}
	digest := sha256.Sum256(append([]byte(c.r.Method+" "+c.r.URL.Path+"\n"), c.body...))
	request := hex.EncodeToString(digest[:])
	var (
		res    result
		replay *store.Remembered
	)
	_, err := s.st.Write(c.r.Context(), func(tx *store.Tx) error {
		if key != "" {
			prev, found, err := tx.Recall(c.caller.Name, key)
			if err != nil {
				return err
			}
			if found {
				if prev.Request != request {
					return &Error{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyReused,
						Message: "this Idempotency-Key was used for a different request"}
				}
				replay = &prev
				return nil
			}
		}
		var err error
		if res, err = fn(tx); err != nil {
			return err
		}
		if key != "" {
			kept := res.body
			if res.remembered != nil {
				kept = res.remembered
			}
			b, err := json.Marshal(kept)
			if err != nil {
				return err
			}
			return tx.Remember(c.caller.Name, key, store.Remembered{Request: request, Status: res.status, Body: b, ETag: res.etag})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if replay != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		if replay.ETag > 0 {
			w.Header().Set("ETag", etag(replay.ETag))
		}
		w.WriteHeader(replay.Status)
		var out bytes.Buffer
		if json.Indent(&out, replay.Body, "", "  ") == nil {
			out.WriteByte('\n')
			_, _ = w.Write(out.Bytes())
		}
		return nil
	}
	if res.etag > 0 {
		w.Header().Set("ETag", etag(res.etag))
	}
	if res.body == nil {
		w.WriteHeader(res.status)
		return nil
	}
	writeJSON(w, res.status, res.body)
	return nil
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch checks a request's If-Match against the version read; without
// one the write goes ahead (the transaction still refuses a version that
// changed meanwhile).
func ifMatch(c *call, version int64) error {
	h := strings.TrimSpace(c.r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return nil
	}
	for _, v := range strings.Split(h, ",") {
		if strings.TrimPrefix(strings.TrimSpace(v), "W/") == etag(version) {
			return nil
		}
	}
	return &Error{Status: http.StatusPreconditionFailed, Code: CodePreconditionFailed,
		Message: "If-Match does not match: the resource changed since it was read; read it again and retry"}
}

// page is a list response.
type page struct {
	Items  []any `json:"items"`
	Total  int   `json:"total"`
	Offset int   `json:"offset"`
	Limit  int   `json:"limit"`
}

// Paging bounds.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

func paging(c *call) (offset, limit int, err error) {
	q := c.r.URL.Query()
	offset, limit = 0, DefaultLimit
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, invalid("offset: want a number from 0")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxLimit {
			return 0, 0, invalid(fmt.Sprintf("limit: want a number from 1 to %d", MaxLimit))
		}
	}
	return offset, limit, nil
}

// writeRecord stores spec (and meta) as rec's body, creates the record
// (before nil) or updates it from the version read, and audits the
// write. It returns the record as stored and as shown.
func (s *Server) writeRecord(tx *store.Tx, c *call, rec store.Record, spec proto.Message, meta store.Meta, before object,
	show func(store.Record) (object, error)) (store.Record, object, error) {
	body, err := store.EncodeBody(spec, meta)
	if err != nil {
		return rec, nil, err
	}
	rec.Body = body
	action := "update"
	if before == nil {
		action = "create"
		rec, err = tx.Create(rec)
	} else {
		rec, err = tx.Update(rec)
	}
	if err != nil {
		return rec, nil, err
	}
	after, err := show(rec)
	if err != nil {
		return rec, nil, err
	}
	return rec, after, s.audit(tx, c, action, rec.Kind, rec.ID, before, after)
}

// audit records a write; before and after are representations, which
// never hold a secret.
func (s *Server) audit(tx *store.Tx, c *call, action string, kind store.Kind, id string, before, after any) error {
	enc := func(v any) string {
		if o, isObject := v.(object); v == nil || isObject && o == nil {
			return ""
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	return tx.Audit(store.AuditEntry{Actor: c.caller.Name, Role: c.caller.Role, Action: action, Kind: kind, Object: id,
		Before: enc(before), After: enc(after)})
}
