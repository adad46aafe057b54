package portal

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/model"
)

// tryIt sends a developer's call to the gateway in front of the
// enforcers (portal.gatewayUrl), so it is decided, limited and counted
// like any other. The control plane makes the call, not the browser:
// no cross-origin setup is needed, and only the gateway is reachable
// from here (the URL is configuration; the caller chooses a path under
// the API's base path).
type tryIt struct {
	base   *url.URL
	client *http.Client
}

// Bounds of a try-it call.
const (
	tryTimeout       = 10 * time.Second
	maxTryBody       = 64 << 10
	maxTryAnswerBody = 64 << 10
)

func newTryIt(gateway, caFile string) (*tryIt, error) {
	base, err := url.Parse(gateway)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("gatewayCaFile %s: no certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &tryIt{base: base, client: &http.Client{Transport: tr, Timeout: tryTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

var tryMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// tryAnswer is what the result page shows.
type tryAnswer struct {
	Method, URL string
	Status      string
	Headers     []string
	Body        string
	Truncated   bool
	Err         string
}

func (p *Portal) tryAPI(rq *request) error {
	if p.tryIt == nil {
		return errNotFound
	}
	id := rq.r.PathValue("id")
	var a apiRecord
	if err := p.api.do(rq.ctx(), rq.who, http.MethodGet, "/apis/"+url.PathEscape(id), nil, nil, &a); err != nil {
		return err
	}
	f := rq.r.PostForm
	method := strings.ToUpper(f.Get("method"))
	path := f.Get("path")
	key := strings.TrimSpace(f.Get("key"))
	body := f.Get("body")
	base := a.BasePath
	if base == "" {
		base = "/"
	}
	switch {
	case !slices.Contains(tryMethods, method):
		return &pageError{http.StatusBadRequest, "Choose a method."}
	case !strings.HasPrefix(path, base) || strings.HasPrefix(path, "//") || len(path) > 2048 || strings.ContainsAny(path, " \r\n\t#"):
		return &pageError{http.StatusBadRequest, "The path must start with the API's base path " + base + "."}
	case len(body) > maxTryBody || len(key) > 512 || strings.ContainsAny(key, "\r\n"):
		return &pageError{http.StatusBadRequest, "The body or the key is too long."}
	}
	target := *p.tryIt.base
	rel, err := url.Parse(path)
	if err != nil {
		return &pageError{http.StatusBadRequest, "The path is not a URL path."}
	}
	target.Path = strings.TrimSuffix(target.Path, "/") + rel.Path
	target.RawQuery = rel.RawQuery
	req, err := http.NewRequestWithContext(rq.ctx(), method, target.String(), strings.NewReader(body))
	if err != nil {
		return &pageError{http.StatusBadRequest, "The call could not be made."}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		header := a.APIKey.Header
		if header == "" {
			header = model.DefaultAPIKeyHeader
		}
		req.Header.Set(header, key)
	}
	if len(a.Hosts) > 0 && !strings.Contains(a.Hosts[0], "*") {
		req.Host = a.Hosts[0]
	}
	ans := tryAnswer{Method: method, URL: target.String()}
	resp, err := p.tryIt.client.Do(req)
	if err != nil {
		ans.Err = "The gateway did not answer: " + err.Error()
	} else {
		defer resp.Body.Close()
		ans.Status = resp.Status
		for _, h := range []string{"Content-Type", "Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset", "Retry-After", "Www-Authenticate", "X-Tollgate-Code"} {
			if v := resp.Header.Get(h); v != "" {
				ans.Headers = append(ans.Headers, h+": "+v)
			}
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxTryAnswerBody+1))
		if len(b) > maxTryAnswerBody {
			b, ans.Truncated = b[:maxTryAnswerBody], true
		}
		if utf8.Valid(b) {
			ans.Body = string(b)
		} else {
			ans.Body = fmt.Sprintf("(%d bytes that are not text)", len(b))
		}
	}
	p.log.Info("portal: try-it", "user", rq.who.Name, "api", a.ID, "method", method, "status", ans.Status)
	return p.render(rq, "try", "Try "+a.title(), map[string]any{"API": a, "Answer": ans})
}
