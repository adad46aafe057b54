package extproc

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDecodeAnswer(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		request bool
		check   func(t *testing.T, a *answer)
	}{
		{"empty object", `{}`, true, func(t *testing.T, a *answer) {
			if !a.unchanged() {
				t.Errorf("%+v is not unchanged", a)
			}
		}},
		{"names lower case, sorted; skipped names dropped", `{"headersToAdd": {"X-B": "2", "x-a": "1", "Content-Length": "9", "X-Envoy-Foo": "1", "x-wso2-bar": "1"}}`, true, func(t *testing.T, a *answer) {
			if !slices.Equal(a.Headers.Add, []field{{"x-a", "1"}, {"x-b", "2"}}) {
				t.Errorf("add %v", a.Headers.Add)
			}
		}},
		{"body null keeps the body", `{"body": null}`, true, func(t *testing.T, a *answer) {
			if a.HasBody {
				t.Error("a null body replaces the body")
			}
		}},
		{"empty body clears it", `{"body": ""}`, true, func(t *testing.T, a *answer) {
			if !a.HasBody || len(a.Body) != 0 {
				t.Errorf("body %v %q", a.HasBody, a.Body)
			}
		}},
		{"unpadded base64", `{"body": "aGk"}`, true, func(t *testing.T, a *answer) {
			if string(a.Body) != "hi" {
				t.Errorf("body %q", a.Body)
			}
		}},
		{"responseCode without directRespond is ignored", `{"responseCode": 404}`, true, func(t *testing.T, a *answer) {
			if a.Status != 0 {
				t.Errorf("status %d", a.Status)
			}
		}},
		{"responseCode in the response flow", `{"responseCode": 404}`, false, func(t *testing.T, a *answer) {
			if a.Status != 404 {
				t.Errorf("status %d", a.Status)
			}
		}},
		{"response flow ignores the request flow's fields", `{"directRespond": true, "interceptorContext": {"a": "b"}, "dynamicEndpoint": {"endpointName": "x"}}`, false, func(t *testing.T, a *answer) {
			if a.DirectRespond || a.Context != nil {
				t.Errorf("%+v", a)
			}
		}},
		{"empty dynamic endpoint is no endpoint", `{"dynamicEndpoint": {"endpointName": ""}}`, true, func(t *testing.T, a *answer) {}},
		{"unknown fields are ignored", `{"rateLimitKeys": {"k": "v"}}`, true, func(t *testing.T, a *answer) {}},
		{"tab inside a value", `{"headersToReplace": {"x-a": "a\tb"}}`, true, func(t *testing.T, a *answer) {
			if a.Headers.Replace[0].Value != "a\tb" {
				t.Errorf("%v", a.Headers.Replace)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := decodeAnswer([]byte(tc.in), tc.request, 1<<10)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, a)
		})
	}
}

func TestDecodeAnswerRefuses(t *testing.T) {
	for _, in := range []string{
		``, `null x`, `[]`, `{"headersToRemove": "x-a"}`, `{"headersToAdd": {":authority": "x"}}`,
		`{"headersToAdd": {"upgrade": "h2c"}}`, `{"trailersToReplace": {"te": "x"}}`, `{"headersToAdd": {"x-a": " padded"}}`,
		`{"headersToAdd": {"x-a": "\u007f"}}`, `{"headersToAdd": {"` + strings.Repeat("a", maxNameBytes+1) + `": "1"}}`,
		`{"headersToAdd": {"x-a": "` + strings.Repeat("a", maxValueBytes+1) + `"}}`, `{"responseCode": 99}`,
		`{"body": "` + strings.Repeat("QUFB", 400) + `"}`, // 1200 bytes, over the limit of 1024
		`{"interceptorContext": {"a": 1}}`, `{"directRespond": "yes"}`,
	} {
		if _, err := decodeAnswer([]byte(in), true, 1<<10); !errors.Is(err, errInvalid) {
			t.Errorf("%.60s: error %v, want errInvalid", in, err)
		}
	}
}

// FuzzDecodeAnswer: any bytes decode to an error or to an answer that is
// safe to apply: every name a lower-case token that is no pseudo-header,
// no refused or skipped name, every value free of control characters, the
// body within the limit.
func FuzzDecodeAnswer(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"directRespond": true, "responseCode": 403, "headersToAdd": {"content-type": "text/plain"}, "body": "aGk="}`,
		`{"headersToAdd": {"X-A": "1"}, "headersToReplace": {"b": "2"}, "headersToRemove": ["c"], "interceptorContext": {"k": "v"}}`,
		`{"trailersToAdd": {"t": "1"}, "trailersToRemove": ["u"], "trailersToReplace": {"v": "w"}}`,
		`{"headersToAdd": {":path": "/"}}`, `{"body": "%%%"}`, `{"dynamicEndpoint": {"endpointName": "e"}}`,
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, request bool) {
		a, err := decodeAnswer(data, request, 64)
		if err != nil {
			if !errors.Is(err, errInvalid) {
				t.Fatalf("error %v is not errInvalid", err)
			}
			return
		}
		if len(a.Body) > 64 || a.HasBody != (a.Body != nil) {
			t.Fatalf("body %d bytes, has %v", len(a.Body), a.HasBody)
		}
		if a.Status != 0 && (a.Status < 200 || a.Status > 599) {
			t.Fatalf("status %d", a.Status)
		}
		if !request && (a.DirectRespond || a.Context != nil) {
			t.Fatal("request-flow fields in a response-flow answer")
		}
		n := 0
		for _, c := range []changes{a.Headers, a.Trailers} {
			names := slices.Clone(c.Remove)
			for _, fl := range append(slices.Clone(c.Replace), c.Add...) {
				names = append(names, fl.Name)
				if err := checkValue("header", fl.Name, fl.Value); err != nil {
					t.Fatalf("value of %q passed: %v", fl.Name, err)
				}
			}
			n += len(names)
			for _, name := range names {
				lower, keep, err := checkName("header", name)
				if err != nil || !keep || lower != name {
					t.Fatalf("name %q passed (keep %v, err %v)", name, keep, err)
				}
			}
		}
		if n > maxAnswerFields {
			t.Fatalf("%d changes", n)
		}
	})
}
