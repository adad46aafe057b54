package config

import (
	"strings"
	"testing"
)

// policiesAPI is an API whose policies and cors sections the cases fill.
const policiesAPI = `
apis:
  - id: shop
    basePath: /shop
    security: [apiKey]
    SECTION
    operations:
      - {path: "/items/{id}", methods: [GET]}
      - path: /orders
        methods: [POST]
        OPSECTION
issuers:
  - name: idp
    issuer: https://idp.example.com
    jwksFile: JWKS
    claimHeaders: {email: x-user-email}
`

// TestCompilePolicyProblems: every policy, rule, interceptor and CORS
// setting a replica could not carry out is refused at load, at its path.
func TestCompilePolicyProblems(t *testing.T) {
	cases := []struct {
		name, api, op, path, msg string
	}{
		{"two kinds in one item", `policies: {request: [{setHeader: {name: a, value: b}, removeHeader: {name: c}}]}`, "",
			"apis[0].policies.request[0]", "exactly one"},
		{"an empty item", `policies: {request: [{}]}`, "", "apis[0].policies.request[0]", "exactly one"},
		{"bad header name", `policies: {request: [{setHeader: {name: "a b", value: x}}]}`, "", "apis[0].policies.request[0].setHeader.name", "not a valid header name"},
		{"identity header", `policies: {request: [{setHeader: {name: X-Consumer-Id, value: x}}]}`, "", "apis[0].policies.request[0].setHeader.name", "set by Tollgate alone"},
		{"claim header", `policies: {request: [{removeHeader: {name: x-user-email}}]}`, "", "apis[0].policies.request[0].removeHeader.name", "set by Tollgate alone"},
		{"host", `policies: {request: [{renameHeader: {from: x-a, to: host}}]}`, "", "apis[0].policies.request[0].renameHeader.to", "frames or routes"},
		{"credential renamed", `policies: {request: [{renameHeader: {from: apikey, to: x-key}}]}`, "", "apis[0].policies.request[0].renameHeader.from", "credential"},
		{"control character in a value", "policies: {request: [{setHeader: {name: x-a, value: \"a\\r\\nb\"}}]}", "", "apis[0].policies.request[0].setHeader.value", "control characters"},
		{"a proxy's header", `policies: {request: [{renameHeader: {from: x-next, to: X-Tollgate-Upstream-Uri}}]}`, "", "apis[0].policies.request[0].renameHeader.to", "speaks to the proxy"},
		{"Envoy's header", `policies: {request: [{setHeader: {name: x-envoy-auth-headers-to-remove, value: a}}]}`, "", "apis[0].policies.request[0].setHeader.name", "speaks to the proxy"},
		{"a method override", `policies: {request: [{renameHeader: {from: x-a, to: x-http-method-override}}]}`, "", "apis[0].policies.request[0].renameHeader.to", "overrides the method"},
		{"rename to a credential", `policies: {request: [{renameHeader: {from: x-b, to: authorization}}]}`, "", "apis[0].policies.request[0].renameHeader.to", "carries credentials"},
		{"add _method", `policies: {request: [{addQuery: {name: _method, value: DELETE}}]}`, "", "apis[0].policies.request[0].addQuery.name", "method override"},
		{"response identity header", `policies: {response: [{setHeader: {name: x-consumer-id, value: admin}}]}`, "", "apis[0].policies.response[0].setHeader.name", "Tollgate's or the proxy's own"},
		{"response control header", `policies: {response: [{addHeader: {name: x-tollgate-upstream-method, value: DELETE}}]}`, "", "apis[0].policies.response[0].addHeader.name", "Tollgate's or the proxy's own"},
		{"one name both ways", `policies: {request: [{setHeader: {name: x-a, value: "1"}}], response: [{setHeader: {name: x-a, value: "2"}}]}`, "", "apis[0].operations[0].path", "both a request and a response policy"},
		{"rewrite encoded dot", `policies: {request: [{rewritePath: "/%2e%2e/admin"}]}`, "", "apis[0].policies.request[0].rewritePath", "no encoded dot"},
		{"rewrite bad escape", `policies: {request: [{rewritePath: "/a%zz"}]}`, "", "apis[0].policies.request[0].rewritePath", "two hex digits"},
		{"rule pattern from the request", `policies: {rules: [{expr: "request.headers.x.matches(request.headers.y)"}]}`, "", "apis[0].policies.rules[0].expr", "literal pattern"},
		{"cors default port", `cors: {allowOrigins: ["https://a.example:443"]}`, "", "apis[0].cors.allowOrigins[0]", "default port"},
		{"query name", `policies: {request: [{addQuery: {name: "a&b", value: x}}]}`, "", "apis[0].policies.request[0].addQuery.name", "letters, digits"},
		{"query value", `policies: {request: [{addQuery: {name: a, value: "x&y=z"}}]}`, "", "apis[0].policies.request[0].addQuery.value", "letters, digits"},
		{"rewrite without slash", `policies: {request: [{rewritePath: "v2"}]}`, "", "apis[0].policies.request[0].rewritePath", "must start with /"},
		{"rewrite dot segment", `policies: {request: [{rewritePath: "/a/../b"}]}`, "", "apis[0].policies.request[0].rewritePath", "dot segments"},
		{"rewrite unknown variable", `policies: {request: [{rewritePath: "/v2/{id}"}]}`, "", "apis[0].operations[1].path", "does not have"},
		{"method", "", `policies: {request: [{rewriteMethod: FETCH}]}`, "apis[0].operations[1].policies.request[0].rewriteMethod", "unknown HTTP method"},
		{"response framing header", `policies: {response: [{setHeader: {name: content-length, value: "1"}}]}`, "", "apis[0].policies.response[0].setHeader.name", "frames the response"},
		{"rule syntax", `policies: {rules: [{expr: "request.method =="}]}`, "", "apis[0].policies.rules[0].expr", "Syntax error"},
		{"rule not a condition", `policies: {rules: [{expr: "request.method"}]}`, "", "", ""},
		{"rule type", `policies: {rules: [{expr: "1 + 1"}]}`, "", "apis[0].policies.rules[0].expr", "must be a condition"},
		{"rule unknown variable", `policies: {rules: [{expr: "user.name == 'a'"}]}`, "", "apis[0].policies.rules[0].expr", "undeclared reference"},
		{"rule cost", `policies: {rules: [{expr: "request.headers.all(a, request.headers.all(b, request.headers.all(c, a+b+c != '')))"}]}`, "", "apis[0].policies.rules[0].expr", "over the limit"},
		{"rule status", `policies: {rules: [{expr: "true", status: 500}]}`, "", "apis[0].policies.rules[0].status", "400 to 499"},
		{"rule code", `policies: {rules: [{expr: "true", denyCode: "a b"}]}`, "", "apis[0].policies.rules[0].denyCode", "letters, digits"},
		{"interceptor url path", `policies: {interceptors: {request: {url: "http://m:8080/x"}}}`, "", "apis[0].policies.interceptors.request.url", "no path"},
		{"interceptor none", `policies: {interceptors: {timeout: 1s}}`, "", "apis[0].policies.interceptors", "name a request or a response"},
		{"interceptor include", `policies: {interceptors: {response: {url: "http://m", includes: [requestBody]}}}`, "", "apis[0].policies.interceptors.response.includes[0]", "want one of"},
		{"interceptor failure mode", `policies: {interceptors: {request: {url: "http://m"}, failureMode: sometimes}}`, "", "apis[0].policies.interceptors.failureMode", "closed or open"},
		{"interceptor body", `policies: {interceptors: {request: {url: "http://m"}, maxBodyBytes: 100000000}}`, "", "apis[0].policies.interceptors.maxBodyBytes", "want 1 to"},
		{"cors without origins", `cors: {allowMethods: [GET]}`, "", "apis[0].cors.allowOrigins", "required"},
		{"cors * with credentials", `cors: {allowOrigins: ["*"], allowCredentials: true}`, "", "apis[0].cors.allowOrigins[0]", "cannot go with allowCredentials"},
		{"cors header * with credentials", `cors: {allowOrigins: ["https://a.example"], allowHeaders: ["*"], allowCredentials: true}`, "", "apis[0].cors.allowHeaders[0]", "cannot go with allowCredentials"},
		{"cors origin with a path", `cors: {allowOrigins: ["https://a.example/x"]}`, "", "apis[0].cors.allowOrigins[0]", "no path"},
		{"cors bad pattern", `cors: {allowOrigins: ["https://a*.example"]}`, "", "apis[0].cors.allowOrigins[0]", "a pattern is"},
		{"cors max age", `cors: {allowOrigins: ["https://a.example"], maxAge: 48h}`, "", "apis[0].cors.maxAge", "want 0 to"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.NewReplacer("SECTION", tc.api, "OPSECTION", tc.op, "JWKS", "/dev/null").Replace(policiesAPI)
			_, err := Compile([]byte(doc), noEnv)
			if tc.path == "" { // a dyn-typed result is checked when evaluated
				if err != nil {
					ps := problemsOf(t, err)
					for _, p := range ps {
						if strings.HasPrefix(p.Path, "apis[0].policies") {
							t.Fatalf("refused: %v", p)
						}
					}
				}
				return
			}
			ps := problemsOf(t, err)
			if _, ok := findProblem(ps, tc.path, tc.msg); !ok {
				t.Errorf("want %s: %q; got\n%v", tc.path, tc.msg, ps)
			}
		})
	}
}

// TestCompilePolicies: a valid set compiles into the operation's merged
// policies, the API's first, and CORS's methods default to the
// operations'.
func TestCompilePolicies(t *testing.T) {
	doc := strings.NewReplacer(
		"SECTION", `policies: {request: [{setHeader: {name: X-Env, value: prod}}], rules: [{expr: "true"}], interceptors: {request: {url: "http://m:8080"}}}
    cors: {allowOrigins: ["https://app.example.com", "https://*.example.org"]}`,
		"OPSECTION", `policies: {request: [{rewritePath: "/v2/orders"}], interceptors: {response: {url: "https://r.example", includes: [responseBody]}, failureMode: open}}`,
		"JWKS", "/dev/null").Replace(policiesAPI)
	doc, _, _ = strings.Cut(doc, "issuers:")
	cfg := mustCompile(t, []byte(doc), noEnv)
	api := cfg.Catalog.API("shop")
	get, post := api.Operations[0].Policies, api.Operations[1].Policies
	if len(get.Request) != 1 || get.Request[0].Name != "x-env" || len(get.Rules) != 1 || get.Interceptors.Request.URL != "http://m:8080" {
		t.Errorf("GET policies %+v", get)
	}
	if len(post.Request) != 2 || post.Interceptors.Response == nil || post.Interceptors.Request != nil || !post.Interceptors.FailOpen || !post.Interceptors.Response.Body {
		t.Errorf("POST policies %+v, interceptors %+v", post, post.Interceptors)
	}
	if got := strings.Join(post.Names, ","); got != "request.setHeader,request.rewritePath,rule,interceptor.response" {
		t.Errorf("names %s", got)
	}
	if got := strings.Join(api.CORS.Methods, ","); got != "GET,POST" {
		t.Errorf("CORS methods %s", got)
	}
}
