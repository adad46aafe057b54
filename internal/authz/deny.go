package authz

import "unicode/utf8"

// Denial is why a request is refused: the HTTP status, the Choreo
// Connect-compatible error code and the texts of the JSON body.
type Denial struct {
	Status      int
	Code        string
	Message     string
	Description string
	Challenge   string // WWW-Authenticate, on 401 for missing credentials
	RetryAfter  int64  // seconds, on 429
	// Headers are more headers of the answer: CORS headers, and those of
	// an answered preflight.
	Headers []Header
	NoBody  bool // an answered preflight (204)
}

// The deny table (README, "The decision"). Description is the default; a
// check may replace it with something more precise.
var (
	denyMissingCredentials = Denial{Status: 401, Code: "900902", Message: "Missing Credentials",
		Description: "Make sure your API invocation call has the required credentials."}
	denyInvalidCredentials = Denial{Status: 401, Code: "900901", Message: "Invalid Credentials",
		Description: "Make sure you have provided the correct security credentials."}
	denySubscriptionBlocked = Denial{Status: 401, Code: "900907", Message: "The requested API is temporarily blocked",
		Description: "The subscription of this application to the API is blocked."}
	denyForbidden = Denial{Status: 403, Code: "900908", Message: "Resource forbidden",
		Description: "The caller is not allowed to access this API."}
	denySubscriptionOnHold = Denial{Status: 403, Code: "900909", Message: "The subscription to the API is inactive",
		Description: "The subscription of this application to the API is on hold."}
	denyScopeMissing = Denial{Status: 403, Code: "900910", Message: "The access token does not allow you to access the requested resource",
		Description: "The credential does not carry a scope this operation requires."}
	denyNotFound = Denial{Status: 404, Code: "404", Message: "Not Found",
		Description: "The requested resource is not available."}
	// denyUnreadable answers a request that Tollgate, the proxy and the
	// upstream could read differently: refusing it is the only decision
	// that holds for every reading.
	denyUnreadable = Denial{Status: 400, Code: "900400", Message: "Bad Request",
		Description: "The request cannot be read unambiguously."}
	denyInternal = Denial{Status: 500, Code: "900500", Message: "Internal Server Error",
		Description: "The request could not be authorized because of an internal error."}
	// denyAPIBlocked has the code and texts of the gateways Tollgate
	// replaces, whose clients may know them.
	denyAPIBlocked = Denial{Status: 503, Code: "700700", Message: "API Blocked",
		Description: "This API has been blocked temporarily. Please try again later or contact the API owner."}
)

// unreadable returns the 400 denial with description desc.
func unreadable(desc string) *Denial {
	d := denyUnreadable
	d.Description = desc
	return &d
}

// GRPCCode maps the HTTP status to the gRPC status Envoy is told
// (google.rpc.Code values).
func (d *Denial) GRPCCode() int32 {
	switch d.Status {
	case 400:
		return 3 // INVALID_ARGUMENT
	case 500:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 5 // NOT_FOUND
	case 429:
		return 8 // RESOURCE_EXHAUSTED
	case 503:
		return 14 // UNAVAILABLE
	}
	return 7
}

// Body is the JSON body of the deny response:
// {"code":"900901","error_message":"…","error_description":"…"}
func (d *Denial) Body() []byte {
	b := make([]byte, 0, 64+len(d.Message)+len(d.Description))
	b = append(b, `{"code":`...)
	b = appendJSONString(b, d.Code)
	b = append(b, `,"error_message":`...)
	b = appendJSONString(b, d.Message)
	b = append(b, `,"error_description":`...)
	b = appendJSONString(b, d.Description)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Descriptions can quote
// request data, so everything outside printable ASCII is escaped and
// invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = utf8.AppendRune(b, r)
		}
		i += size
	}
	return append(b, '"')
}
