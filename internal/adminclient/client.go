// Package adminclient is the command line over the control plane's admin
// REST API: `enforcer admin <apis|apps|subscriptions|keys|policies|issuers|usage>
// <verb>`, and `enforcer admin export|import` in the YAML format of a
// config file. It speaks only HTTP to the API; everything it may do is
// what the token's role may do.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client calls one control plane's admin API.
type Client struct {
	Server string // http(s)://host:port
	Token  string
	HTTP   *http.Client
}

// APIError is the API's error shape.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"details"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Code, e.Message)
	for _, d := range e.Details {
		fmt.Fprintf(&b, "\n  %s: %s", d.Path, d.Message)
	}
	return b.String()
}

// maxResponseBytes bounds what the client reads of one answer.
const maxResponseBytes = 256 << 20

// Do sends one request; body, if not nil, is sent as JSON (a []byte is
// sent as it is). It returns the response body of a 2xx answer and its
// headers, or an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body any, header http.Header) ([]byte, http.Header, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Server, "/")+path, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if rd != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return nil, nil, err
	}
	if res.StatusCode >= 300 {
		e := &APIError{Status: res.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = http.StatusText(res.StatusCode), strings.TrimSpace(string(data))
		}
		return nil, res.Header, e
	}
	return data, res.Header, nil
}

// object is one resource as the API shows it.
type object = map[string]any

// page is a list answer.
type page struct {
	Items []object `json:"items"`
	Total int      `json:"total"`
}

// All reads every page of a list route.
func (c *Client) All(ctx context.Context, path string) ([]object, error) {
	var out []object
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for offset := 0; ; {
		data, _, err := c.Do(ctx, http.MethodGet, fmt.Sprintf("%s%soffset=%d&limit=1000", path, sep, offset), nil, nil)
		if err != nil {
			return nil, err
		}
		var p page
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("%s: not a page: %w", path, err)
		}
		out = append(out, p.Items...)
		offset += len(p.Items)
		if len(p.Items) == 0 || offset >= p.Total {
			return out, nil
		}
	}
}
