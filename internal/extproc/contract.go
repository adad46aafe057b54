package extproc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The interceptor contract of Choreo Connect: what Tollgate posts to
// {url}/api/v1/handle-request and {url}/api/v1/handle-response, and what the
// service answers. Bodies travel base64-encoded; headers, trailers and the
// interceptor context are string maps.

const (
	handleRequestPath  = "/api/v1/handle-request"
	handleResponsePath = "/api/v1/handle-response"
)

// requestCall is the body of a handle-request call.
type requestCall struct {
	RequestHeaders    map[string]string  `json:"requestHeaders,omitzero"`
	RequestTrailers   map[string]string  `json:"requestTrailers,omitzero"`
	RequestBody       []byte             `json:"requestBody,omitzero"` // base64 in JSON
	InvocationContext *invocationContext `json:"invocationContext,omitempty"`
}

// responseCall is the body of a handle-response call. responseCode is
// required by the contract, so it is always sent.
type responseCall struct {
	ResponseCode       int                `json:"responseCode"`
	ResponseHeaders    map[string]string  `json:"responseHeaders,omitzero"`
	ResponseTrailers   map[string]string  `json:"responseTrailers,omitzero"`
	ResponseBody       []byte             `json:"responseBody,omitzero"`
	InvocationContext  *invocationContext `json:"invocationContext,omitempty"`
	InterceptorContext map[string]string  `json:"interceptorContext,omitempty"`
}

// invocationContext describes the request to the interceptor.
type invocationContext struct {
	RequestID             string                 `json:"requestId"`
	Protocol              string                 `json:"protocol"`
	Scheme                string                 `json:"scheme"`
	APIName               string                 `json:"apiName"`
	APIVersion            string                 `json:"apiVersion"`
	Vhost                 string                 `json:"vhost"`
	BasePath              string                 `json:"basePath"`
	SupportedMethods      string                 `json:"supportedMethods"`
	Method                string                 `json:"method"`
	Path                  string                 `json:"path"`
	PathTemplate          string                 `json:"pathTemplate"`
	Source                string                 `json:"source"`
	Destination           string                 `json:"destination,omitempty"`
	ProdClusterName       string                 `json:"prodClusterName"`
	SandClusterName       string                 `json:"sandClusterName"`
	AuthenticationContext *authenticationContext `json:"authenticationContext,omitempty"`
}

// authenticationContext is what ext_authz's metadata tells of the caller.
// The raw token is not sent: ext_authz has removed it from the request
// before ext_proc sees it, unless the API forwards credentials.
type authenticationContext struct {
	TokenType string `json:"tokenType"`
	Token     string `json:"token,omitempty"`
	KeyType   string `json:"keyType"`
}

// rawAnswer is an interceptor's answer as it is decoded, before it is
// checked. Both flows share it: the response flow's answer has no
// directRespond, dynamicEndpoint or interceptorContext, and those are
// ignored there.
type rawAnswer struct {
	DirectRespond   bool `json:"directRespond"`
	ResponseCode    int  `json:"responseCode"`
	DynamicEndpoint *struct {
		EndpointName string `json:"endpointName"`
	} `json:"dynamicEndpoint"`
	HeadersToAdd       map[string]string `json:"headersToAdd"`
	HeadersToReplace   map[string]string `json:"headersToReplace"`
	HeadersToRemove    []string          `json:"headersToRemove"`
	TrailersToAdd      map[string]string `json:"trailersToAdd"`
	TrailersToReplace  map[string]string `json:"trailersToReplace"`
	TrailersToRemove   []string          `json:"trailersToRemove"`
	Body               *string           `json:"body"` // absent or null: the body is kept
	InterceptorContext map[string]string `json:"interceptorContext"`
}

// answer is a checked interceptor answer, ready to apply: names lower
// case, in a stable order, every one of them valid.
type answer struct {
	DirectRespond bool
	Status        int // 0: unchanged (response flow) or the default (direct respond)
	Headers       changes
	Trailers      changes
	Body          []byte
	HasBody       bool // Body replaces the message's (possibly with nothing)
	Context       map[string]string
}

// changes are header or trailer changes, applied as Choreo Connect does:
// removals, then replacements, then additions.
type changes struct {
	Remove  []string
	Replace []field
	Add     []field
}

func (c *changes) empty() bool { return len(c.Remove)+len(c.Replace)+len(c.Add) == 0 }

type field struct{ Name, Value string }

// Bounds of an answer beyond its byte size.
const (
	maxAnswerFields   = 100 // header and trailer entries together, as Envoy's default header count
	maxNameBytes      = 256
	maxValueBytes     = 16 << 10
	maxContextEntries = 64
	maxContextBytes   = 64 << 10
)

var errInvalid = errors.New("invalid interceptor answer")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errInvalid}, args...)...)
}

// decodeAnswer reads and checks an interceptor's answer. requestFlow says
// which flow it answers; maxBody bounds a body it returns. An error is
// always errInvalid, wrapped.
func decodeAnswer(data []byte, requestFlow bool, maxBody int) (*answer, error) {
	var raw rawAnswer
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, invalidf("not the contract's JSON: %v", err)
	}
	if dec.More() {
		return nil, invalidf("more than one JSON value")
	}
	a := &answer{}
	if requestFlow {
		a.DirectRespond = raw.DirectRespond
		if raw.DynamicEndpoint != nil && raw.DynamicEndpoint.EndpointName != "" {
			return nil, invalidf("dynamicEndpoint is not supported")
		}
		ctx, err := checkContext(raw.InterceptorContext)
		if err != nil {
			return nil, err
		}
		a.Context = ctx
	}
	switch code := raw.ResponseCode; {
	case code == 0:
	case code < 200 || code > 599:
		return nil, invalidf("responseCode %d is not 200 to 599", code)
	case requestFlow && !raw.DirectRespond:
		// The contract's responseCode only matters to a direct response.
	default:
		a.Status = code
	}
	budget := maxAnswerFields
	var err error
	if a.Headers, err = checkChanges("header", raw.HeadersToRemove, raw.HeadersToReplace, raw.HeadersToAdd, &budget); err != nil {
		return nil, err
	}
	if a.Trailers, err = checkChanges("trailer", raw.TrailersToRemove, raw.TrailersToReplace, raw.TrailersToAdd, &budget); err != nil {
		return nil, err
	}
	if raw.Body != nil {
		body, err := decodeBase64(*raw.Body)
		if err != nil {
			return nil, invalidf("body is not base64: %v", err)
		}
		if len(body) > maxBody {
			return nil, invalidf("body of %d bytes is over the limit of %d", len(body), maxBody)
		}
		a.Body, a.HasBody = body, true
	}
	return a, nil
}

// decodeBase64 accepts standard base64, padded or not, as encoders differ.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") || len(s)%4 == 0 {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func checkContext(in map[string]string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > maxContextEntries {
		return nil, invalidf("interceptorContext has %d entries, at most %d", len(in), maxContextEntries)
	}
	n := 0
	for k, v := range in {
		n += len(k) + len(v)
	}
	if n > maxContextBytes {
		return nil, invalidf("interceptorContext has %d bytes, at most %d", n, maxContextBytes)
	}
	return in, nil
}

func checkChanges(kind string, remove []string, replace, add map[string]string, budget *int) (changes, error) {
	var c changes
	*budget -= len(remove) + len(replace) + len(add)
	if *budget < 0 {
		return c, invalidf("more than %d header and trailer changes", maxAnswerFields)
	}
	for _, name := range remove {
		n, keep, err := checkName(kind, name)
		if err != nil {
			return c, err
		}
		if keep {
			c.Remove = append(c.Remove, n)
		}
	}
	var err error
	if c.Replace, err = checkFields(kind, replace); err != nil {
		return c, err
	}
	if c.Add, err = checkFields(kind, add); err != nil {
		return c, err
	}
	return c, nil
}

// checkFields checks a map of names to values and returns it sorted by
// name, so that the same answer always makes the same mutation.
func checkFields(kind string, m map[string]string) ([]field, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make([]field, 0, len(m))
	for name, value := range m {
		n, keep, err := checkName(kind, name)
		if err != nil {
			return nil, err
		}
		if err := checkValue(kind, n, value); err != nil {
			return nil, err
		}
		if keep {
			out = append(out, field{n, value})
		}
	}
	slices.SortFunc(out, func(a, b field) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// refusedNames are names an interceptor may not touch: they frame the
// message or belong to one hop, or name its host.
var refusedNames = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"te": true, "upgrade": true, "trailer": true, "host": true,
}

// checkName lower-cases name and checks it. keep is false for a name that
// is skipped rather than refused: x-envoy-* and x-wso2-*, which Choreo
// Connect skips too, and content-length, which Tollgate sets itself when a
// body is replaced.
func checkName(kind, name string) (lower string, keep bool, err error) {
	if name == "" || len(name) > maxNameBytes {
		return "", false, invalidf("a %s name must have 1 to %d bytes", kind, maxNameBytes)
	}
	if name[0] == ':' {
		return "", false, invalidf("%s %q: pseudo-headers cannot be changed", kind, name)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return "", false, invalidf("%s name %q is not an HTTP token", kind, name)
		}
	}
	lower = strings.ToLower(name)
	if refusedNames[lower] {
		return "", false, invalidf("%s %q cannot be changed", kind, lower)
	}
	if lower == "content-length" || strings.HasPrefix(lower, "x-envoy") || strings.HasPrefix(lower, "x-wso2") {
		return lower, false, nil
	}
	return lower, true, nil
}

func checkValue(kind, name, v string) error {
	if len(v) > maxValueBytes {
		return invalidf("%s %q: value over %d bytes", kind, name, maxValueBytes)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return invalidf("%s %q: value has a control character", kind, name)
		}
	}
	if v != strings.Trim(v, " \t") {
		return invalidf("%s %q: value has leading or trailing white space", kind, name)
	}
	return nil
}

// isTokenChar reports whether c may appear in an HTTP field name (RFC 9110
// tchar).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
