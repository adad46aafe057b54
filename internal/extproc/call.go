package extproc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/policy"
)

// answerOverhead is what an answer may hold beyond its base64 body:
// headers, trailers, the interceptor context, JSON punctuation.
const answerOverhead = 256 << 10

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// callError is a failed call and the result it is counted as.
type callError struct {
	result string
	err    error
}

func (e *callError) Error() string { return e.err.Error() }

// call posts payload to one of an interceptor's handlers and reads its
// answer. A nil answer and nil error: the service wants nothing changed
// (204, as Choreo Connect reads it).
func (s *Server) call(ctx context.Context, ic *policy.Interceptors, svc *policy.Interceptor, path string, payload any, requestFlow bool) (*answer, *callError) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 { // keep small buffers only
			bufPool.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(payload); err != nil {
		return nil, &callError{resultInvalid, fmt.Errorf("encoding the call: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, ic.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, svc.URL+path, bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, &callError{resultUnreachable, err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &callError{resultTimeout, fmt.Errorf("no answer within %s", ic.Timeout)}
		}
		return nil, &callError{resultUnreachable, err}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNoContent:
		return nil, nil
	default:
		return nil, &callError{resultStatus, fmt.Errorf("HTTP status %d", resp.StatusCode)}
	}
	limit := int64(base64.StdEncoding.EncodedLen(ic.MaxBodyBytes) + answerOverhead)
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, &callError{resultTimeout, fmt.Errorf("no whole answer within %s", ic.Timeout)}
	case err != nil:
		return nil, &callError{resultUnreachable, fmt.Errorf("reading the answer: %w", err)}
	case int64(len(data)) > limit:
		return nil, &callError{resultInvalid, fmt.Errorf("%w: over %d bytes", errInvalid, limit)}
	}
	a, err := decodeAnswer(data, requestFlow, ic.MaxBodyBytes)
	if err != nil {
		return nil, &callError{resultInvalid, err}
	}
	return a, nil
}

// timed runs a call and counts it.
func (st *stream) timed(flow string, fn func() (*answer, *callError)) (*answer, *callError) {
	start := time.Now()
	a, err := fn()
	took := time.Since(start)
	result := resultOK
	switch {
	case err != nil:
		result = err.result
	case a == nil || a.unchanged():
		result = resultUnchanged
	}
	st.s.metrics.observeCall(st.apiID(), flow, result, took)
	st.logCall(flow, result, took, a, err)
	return a, err
}

func (a *answer) unchanged() bool {
	return !a.DirectRespond && a.Status == 0 && a.Headers.empty() && a.Trailers.empty() && !a.HasBody && len(a.Context) == 0
}
