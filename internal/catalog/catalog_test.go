package catalog

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	valid := []struct{ in, raw, canonical string }{
		{"/", "/", "/"},
		{"/pets", "/pets", "/pets"},
		{"/pets/", "/pets", "/pets"},
		{"/pets/{id}", "/pets/{id}", "/pets/{}"},
		{"/pets/*", "/pets/*", "/pets/{}"},
		{"/files/{path...}", "/files/{path...}", "/files/**"},
		{"/files/**", "/files/**", "/files/**"},
		{"/a/{x}/b/{y_2}", "/a/{x}/b/{y_2}", "/a/{}/b/{}"},
		{"/v1.0/odd-chars_~:@!$&'()+,=", "/v1.0/odd-chars_~:@!$&'()+,=", "/v1.0/odd-chars_~:@!$&'()+,="},
		{"/a%7e%41", "/a%7e%41", "/a~A"},
	}
	for _, tc := range valid {
		tpl, err := ParseTemplate(tc.in)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", tc.in, err)
			continue
		}
		if tpl.String() != tc.raw || tpl.Canonical() != tc.canonical {
			t.Errorf("ParseTemplate(%q) = %q canonical %q, want %q canonical %q", tc.in, tpl, tpl.Canonical(), tc.raw, tc.canonical)
		}
	}

	invalid := []struct{ in, msg string }{
		{"", "must start with /"},
		{"pets", "must start with /"},
		{"/pets?x=1", "query"},
		{"/pets//x", "empty segment"},
		{"/pets/{id", "unbalanced"},
		{"/pets/id}", "not allowed"},
		{"/pets/{}", "parameter names"},
		{"/pets/{1id}", "parameter names"},
		{"/pets/{id-x}", "parameter names"},
		{"/files/**/x", "must be last"},
		{"/files/{p...}/x", "must be last"},
		{"/a/{id}/b/{id}", "appears twice"},
		{"/file.{ext}", "not allowed"},
		{"/a/../b", "dot segment"},
		{"/a b", "not allowed"},
		{"/a;b", "not allowed"},
		{"/x/%2e%2e", "dot segment"},
		{"/a%zz", "malformed"},
		{"/a%00", "NUL"},
	}
	for _, tc := range invalid {
		_, err := ParseTemplate(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseTemplate(%q) error = %v, want one containing %q", tc.in, err, tc.msg)
		}
	}
}

func TestJoinRejectsRepeatedParamsAcrossBaseAndOperation(t *testing.T) {
	base, _ := ParseTemplate("/t/{id}")
	op, _ := ParseTemplate("/x/{id}")
	if _, err := base.Join(op); err == nil {
		t.Fatal("Join accepted {id} in both base path and operation path")
	}
	rest, _ := ParseTemplate("/t/**")
	if _, err := rest.Join(op); err == nil {
		t.Fatal("Join accepted segments after a rest segment")
	}
}

func TestCleanPath(t *testing.T) {
	cases := []struct {
		in      string
		slashes EscapedSlashes
		want    string // "" with err set: refused
		params  string // the reading without ;parameters, when it differs
		err     error
	}{
		{in: "/", want: "/"},
		{in: "/pets", want: "/pets"},
		{in: "/pets/", want: "/pets/"},
		{in: "/pets?apikey=x", want: "/pets"},
		{in: "/pets#frag", want: "/pets"},
		{in: "/pets#x?apikey=k", want: "/pets"},
		{in: "/a//b", want: "/a/b"},
		{in: "/a/./b", want: "/a/b"},
		{in: "/a/b/..", want: "/a"},
		{in: "/a/../../b", want: "/b"},
		{in: "/%70ets", want: "/pets"},
		{in: "/a/%2e%2e/b", want: "/b"},
		{in: "/a/%2E%2E/b", want: "/b"},
		{in: "/a/.%2e/b", want: "/b"},
		// path characters are decoded, everything else is kept escaped in upper case
		{in: "/a%2Bb/%40x", want: "/a+b/@x"},
		{in: "/a%20b/%7c/%c3%a9", want: "/a%20b/%7C/%C3%A9"},
		{in: "/a|b/{x}", want: "/a%7Cb/%7Bx%7D"},
		{in: "/%2541", want: "/%2541"}, // never a new escape out of decoding
		{in: "/%3F/%23", want: "/%3F/%23"},
		// escaped separators
		{in: "/pets/1%2F..%2F..%2Fpets", err: ErrEscapedSlash},
		{in: "/pets/1%2f..", err: ErrEscapedSlash},
		{in: "/pets/1%5C..", err: ErrEscapedSlash},
		{in: "/pets/1%5c..", err: ErrEscapedSlash},
		{in: "/pets/1%2F..%2F..%2Fpets", slashes: UnescapeEscapedSlashes, want: "/pets"},
		{in: "/pets/1%5C..", slashes: UnescapeEscapedSlashes, err: ErrBackslash},
		{in: "/a%2Fb", slashes: KeepEscapedSlashes, want: "/a%2Fb"},
		{in: "/a%2fb/%5c", slashes: KeepEscapedSlashes, want: "/a%2Fb/%5C"},
		// unreadable paths
		{in: "", err: ErrEmptyPath},
		{in: "?x=1", err: ErrEmptyPath},
		{in: "pets", err: ErrNotOriginForm},
		{in: "http://evil/pets", err: ErrNotOriginForm},
		{in: "*", err: ErrNotOriginForm},
		{in: "/a%zz", err: ErrBadEscape},
		{in: "/a%", err: ErrBadEscape},
		{in: "/a%4", err: ErrBadEscape},
		{in: "/%%370", err: ErrBadEscape},
		{in: "/a\\..\\b", err: ErrBackslash},
		{in: "/a%00b", err: ErrPathControl},
		{in: "/a b", err: ErrPathControl},
		{in: "/a\tb", err: ErrPathControl},
		{in: "/caf\xc3\xa9", err: ErrPathControl},
		// ;parameters: the second reading, where it differs
		{in: "/files/a;b.txt", want: "/files/a;b.txt", params: "/files/a"},
		{in: "/health/..;/pets", want: "/health/..;/pets", params: "/pets"},
		{in: "/health/..%3B/pets", want: "/health/..%3B/pets"}, // only a raw ; starts a parameter
		{in: "/a/.;x/b", want: "/a/.;x/b", params: "/a/b"},
		{in: "/a;/b", want: "/a;/b", params: "/a/b"},
	}
	for _, tc := range cases {
		got, err := CleanPath(tc.in, tc.slashes)
		switch {
		case tc.err != nil && err != tc.err:
			t.Errorf("CleanPath(%q, %d) = %+v, %v; want error %v", tc.in, tc.slashes, got, err, tc.err)
		case tc.err == nil && err != nil:
			t.Errorf("CleanPath(%q, %d): %v", tc.in, tc.slashes, err)
		case tc.err == nil && (got.Clean != tc.want || got.WithoutParams != tc.params):
			t.Errorf("CleanPath(%q, %d) = %+v, want %q (without params %q)", tc.in, tc.slashes, got, tc.want, tc.params)
		}
	}
}

func TestCleanPathDoesNotAllocateForCleanPaths(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _, _ = CleanPath("/petstore/v1/pets/42?apikey=x", RejectEscapedSlashes) })
	if allocs != 0 {
		t.Fatalf("CleanPath allocated %v times for a clean path", allocs)
	}
}

func TestNormalizePathShowsRefusedPathsAsSent(t *testing.T) {
	for in, want := range map[string]string{"/a/../b?k=1": "/b", "/a%2Fb?k=1": "/a%2Fb", "/a%zz?k=1": "/a%zz", "": "/"} {
		if got := NormalizePath(in); got != want {
			t.Errorf("NormalizePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func clean(t *testing.T, target string) string {
	t.Helper()
	p, err := CleanPath(target, RejectEscapedSlashes)
	if err != nil {
		t.Fatalf("CleanPath(%q): %v", target, err)
	}
	return p.Clean
}

// testCatalog builds a catalog from a compact description:
// api id, base path, hosts, then "METHODS /template" operations.
func testCatalog(t testing.TB, apis ...[]string) *Catalog {
	t.Helper()
	var out []*API
	for _, spec := range apis {
		a := &API{ID: spec[0], BasePath: spec[1], Hosts: strings.Split(spec[2], ","), APIKeyHeader: "apikey",
			Security: Security{{Schemes: []Scheme{SchemeAPIKey}, Name: "apiKey"}}}
		base, err := ParseTemplate(spec[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range spec[3:] {
			methods, path, _ := strings.Cut(o, " ")
			tpl, err := ParseTemplate(path)
			if err != nil {
				t.Fatal(err)
			}
			full, err := base.Join(tpl)
			if err != nil {
				t.Fatal(err)
			}
			op := &Operation{API: a, Path: tpl.String(), Template: full, Security: a.Security}
			if methods != "*" {
				op.Methods = strings.Split(methods, ",")
			}
			a.Operations = append(a.Operations, op)
		}
		out = append(out, a)
	}
	return New(out, Options{})
}

func TestMatch(t *testing.T) {
	c := testCatalog(t,
		[]string{"pets", "/petstore/v1", "*",
			"GET /pets", "POST /pets", "GET /pets/{id}", "DELETE /pets/{id}", "GET /pets/mine",
			"GET /pets/{id}/photos/{photo}", "* /files/**", "GET /files/special", "GET /"},
		[]string{"pets-eu", "/petstore/v1", "eu.example.com", "GET /pets"},
		[]string{"wild", "/petstore/v1", "*.example.com", "GET /pets", "GET /wild"},
		[]string{"root", "/", "*", "GET /status", "GET /deep/{a}/{b}"},
	)
	cases := []struct {
		host, method, path string
		api, op            string // "" op: no match
		miss               Miss
	}{
		{"api.test", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"api.test", "POST", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"api.test", "GET", "/petstore/v1/pets/", "pets", "/pets", MissNone},
		{"api.test", "GET", "/petstore/v1/pets/42", "pets", "/pets/{id}", MissNone},
		{"api.test", "DELETE", "/petstore/v1/pets/42", "pets", "/pets/{id}", MissNone},
		// the literal beats the parameter
		{"api.test", "GET", "/petstore/v1/pets/mine", "pets", "/pets/mine", MissNone},
		// ...but a literal without the method falls back to the parameter
		{"api.test", "DELETE", "/petstore/v1/pets/mine", "pets", "/pets/{id}", MissNone},
		{"api.test", "GET", "/petstore/v1/pets/1/photos/2", "pets", "/pets/{id}/photos/{photo}", MissNone},
		// rest matches zero or more segments, and loses to anything more specific
		{"api.test", "PUT", "/petstore/v1/files", "pets", "/files/**", MissNone},
		{"api.test", "PUT", "/petstore/v1/files/a/b/c", "pets", "/files/**", MissNone},
		{"api.test", "GET", "/petstore/v1/files/special", "pets", "/files/special", MissNone},
		{"api.test", "GET", "/petstore/v1", "pets", "/", MissNone},
		// hosts: exact beats wildcard beats any, for the same template
		{"eu.example.com", "GET", "/petstore/v1/pets", "pets-eu", "/pets", MissNone},
		{"EU.Example.com", "GET", "/petstore/v1/pets", "pets-eu", "/pets", MissNone},
		// hosts are read as Envoy chooses virtual hosts: a port or a trailing
		// dot is another host, which only "*" matches
		{"eu.example.com:8443", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"eu.example.com:", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"eu.example.com.", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"us.example.com.", "GET", "/petstore/v1/wild", "", "", MissPath},
		{"us.example.com:443", "GET", "/petstore/v1/wild", "", "", MissPath},
		{"[::1]:8080", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"eu.example.com:8443:1", "GET", "/petstore/v1/pets", "", "", MissHost},
		{"eu.example.com@evil", "GET", "/petstore/v1/pets", "", "", MissHost},
		{"eu.example.com:80x", "GET", "/petstore/v1/pets", "", "", MissHost},
		{"[::1", "GET", "/petstore/v1/pets", "", "", MissHost},
		{"", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"us.example.com", "GET", "/petstore/v1/pets", "wild", "/pets", MissNone},
		{"example.com", "GET", "/petstore/v1/pets", "pets", "/pets", MissNone},
		{"us.example.com", "GET", "/petstore/v1/wild", "wild", "/wild", MissNone},
		{"other.test", "GET", "/petstore/v1/wild", "", "", MissPath},
		// path specificity first: a longer literal path under / wins over the rest match
		{"api.test", "GET", "/status", "root", "/status", MissNone},
		{"api.test", "GET", "/deep/1/2", "root", "/deep/{a}/{b}", MissNone},
		{"api.test", "GET", "/deep/1", "", "", MissPath},
		{"api.test", "PATCH", "/petstore/v1/pets/1", "", "", MissMethod},
		// HEAD is answered where GET is
		{"api.test", "HEAD", "/petstore/v1/pets/1", "pets", "/pets/{id}", MissNone},
		{"api.test", "HEAD", "/petstore/v1/files/special", "pets", "/files/special", MissNone},
		{"api.test", "GET", "/petstore/v2/pets", "", "", MissPath},
		{"api.test", "GET", "/petstore/v1/pets/1/2", "", "", MissPath},
		{"api.test", "GET", "/petstorev1/pets", "", "", MissPath},
	}
	for _, tc := range cases {
		op, miss := c.Match(tc.host, tc.method, clean(t, tc.path))
		switch {
		case tc.op == "" && op != nil:
			t.Errorf("%s %s %s matched %s %s, want no match", tc.host, tc.method, tc.path, op.API.ID, op.Path)
		case tc.op == "" && miss != tc.miss:
			t.Errorf("%s %s %s: miss %d, want %d", tc.host, tc.method, tc.path, miss, tc.miss)
		case tc.op != "" && op == nil:
			t.Errorf("%s %s %s matched nothing, want %s %s", tc.host, tc.method, tc.path, tc.api, tc.op)
		case tc.op != "" && (op.API.ID != tc.api || op.Path != tc.op):
			t.Errorf("%s %s %s matched %s %s, want %s %s", tc.host, tc.method, tc.path, op.API.ID, op.Path, tc.api, tc.op)
		}
	}
}

func TestMatchInAPIAndOperationLookup(t *testing.T) {
	c := testCatalog(t,
		[]string{"pets", "/petstore/v1", "only.example.com", "GET /pets", "GET,DELETE /pets/{id}"},
		[]string{"other", "/petstore/v1", "*", "GET /pets"},
	)
	pets := c.API("pets")
	// context_extensions named the API: its hosts do not matter.
	op, miss := c.MatchInAPI(pets, "GET", "/petstore/v1/pets")
	if op == nil || op.API != pets || miss != MissNone {
		t.Fatalf("MatchInAPI = %v, %v; want pets /pets", op, miss)
	}
	if op, _ := c.MatchInAPI(pets, "POST", "/petstore/v1/pets"); op != nil {
		t.Fatalf("MatchInAPI matched POST /pets")
	}
	if op, miss := pets.Operation("/pets/{id}", "DELETE"); op == nil || miss != MissNone {
		t.Fatalf("Operation(/pets/{id}, DELETE) = %v, %v", op, miss)
	}
	if _, miss := pets.Operation("/pets/{id}", "PUT"); miss != MissMethod {
		t.Fatalf("Operation(/pets/{id}, PUT) miss = %v, want MissMethod", miss)
	}
	if _, miss := pets.Operation("/nope", "GET"); miss != MissPath {
		t.Fatalf("Operation(/nope) miss = %v, want MissPath", miss)
	}
	if c.API("missing") != nil {
		t.Fatal("API(missing) != nil")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	c := testCatalog(t, []string{"pets", "/petstore/v1", "*", "GET /pets", "GET /pets/{id}", "* /files/**"})
	allocs := testing.AllocsPerRun(100, func() {
		if op, _ := c.Match("api.example.com", "GET", "/petstore/v1/pets/42"); op == nil {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocated %v times", allocs)
	}
}

func TestParseSecurity(t *testing.T) {
	sec, err := ParseSecurity([]string{"jwt", "mtls+apiKey", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec) != 3 || sec[1].Name != "mtls+apiKey" || len(sec[1].Schemes) != 2 || sec[1].Schemes[1] != SchemeAPIKey {
		t.Fatalf("ParseSecurity = %+v", sec)
	}
	if !sec.Uses(SchemeMTLS) || !sec.Uses(SchemeNone) {
		t.Fatal("Uses misses schemes")
	}
	for _, bad := range [][]string{nil, {"basic"}, {"none+apiKey"}, {"apiKey+apiKey"}, {""}} {
		if _, err := ParseSecurity(bad); err == nil {
			t.Errorf("ParseSecurity(%q) accepted", bad)
		}
	}
}

func TestHostPorts(t *testing.T) {
	apis := [][]string{
		{"public", "/", "public.example.com", "GET /x"},
		{"admin-port", "/", "public.example.com:8443", "GET /x"},
		{"wild-port", "/", "*.example.com:9443", "GET /x"},
		{"protected", "/", "*", "GET /x"},
	}
	cases := []struct {
		stripPort bool
		host      string
		api       string
	}{
		{false, "public.example.com", "public"},
		{false, "PUBLIC.example.COM", "public"},
		{false, "public.example.com:8443", "admin-port"},
		{false, "public.example.com:443", "protected"},
		{false, "public.example.com:", "protected"},
		{false, "public.example.com.", "protected"},
		{false, "a.example.com:9443", "wild-port"},
		{false, "a.example.com", "protected"},
		{true, "public.example.com:443", "public"},
		{true, "public.example.com:", "public"},
		{true, "public.example.com.", "protected"},
	}
	for _, tc := range cases {
		c := testCatalog(t, apis...)
		c.opts.StripPort = tc.stripPort
		op, _ := c.Match(tc.host, "GET", "/x")
		if op == nil || op.API.ID != tc.api {
			t.Errorf("stripPort %v: host %q matched %v, want %s", tc.stripPort, tc.host, op, tc.api)
		}
	}
	for _, bad := range []string{"", "*x", "*.", "a.com:", "a.com:123456", "a b", "*.a.com:x"} {
		if _, ok := ParseHostPattern(bad); ok {
			t.Errorf("ParseHostPattern(%q) accepted", bad)
		}
	}
}

// tenantCatalog is n APIs with the same base path and operations, told
// apart by host only (one per tenant), plus one API on a wildcard host.
func tenantCatalog(t testing.TB, n int) *Catalog {
	specs := make([][]string, 0, n+1)
	for i := range n {
		id := "t" + strconv.Itoa(i)
		specs = append(specs, []string{id, "/shop", id + ".example.com,www." + id + ".example.com",
			"GET /items", "GET /items/{id}", "POST /items", "DELETE /items/{id}", "* /files/**"})
	}
	specs = append(specs, []string{"wild", "/shop", "*.wild.test", "GET /items"})
	return testCatalog(t, specs...)
}

// TestMatchTenantsByHost checks that, among many APIs told apart by host
// alone, a request reaches its own tenant's API, a wildcard API still
// matches its hosts, and an unknown host matches nothing.
func TestMatchTenantsByHost(t *testing.T) {
	c := tenantCatalog(t, 500)
	cases := []struct {
		host, method, path, api string
		miss                    Miss
	}{
		{"t7.example.com", "GET", "/shop/items/9", "t7", MissNone},
		{"WWW.t499.example.com", "DELETE", "/shop/items/9", "t499", MissNone},
		{"t3.example.com", "PUT", "/shop/files/a/b", "t3", MissNone},
		{"t3.example.com", "PUT", "/shop/items", "", MissMethod},
		{"a.wild.test", "GET", "/shop/items", "wild", MissNone},
		{"t7.example.com:8443", "GET", "/shop/items", "", MissPath},
		{"nobody.example.com", "GET", "/shop/items", "", MissPath},
	}
	for _, tc := range cases {
		op, miss := c.Match(tc.host, tc.method, tc.path)
		got := ""
		if op != nil {
			got = op.API.ID
		}
		if got != tc.api || miss != tc.miss {
			t.Errorf("Match(%s %s %s) = %q, miss %d; want %q, miss %d", tc.host, tc.method, tc.path, got, miss, tc.api, tc.miss)
		}
	}
}

// BenchmarkMatchTenantsByHost matches among 10,000 APIs that share their
// paths and differ by host: the cost must not grow with the tenants.
func BenchmarkMatchTenantsByHost(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		c := tenantCatalog(b, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			host := "t" + strconv.Itoa(n/2) + ".example.com"
			for b.Loop() {
				if op, _ := c.Match(host, "GET", "/shop/items/42"); op == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkMatchManyAPIs matches among n APIs of ten operations each,
// told apart by base path and, separately, by host alone: the cost per
// match must not grow with n (make bench reports it).
func BenchmarkMatchManyAPIs(b *testing.B) {
	ops := make([]string, 10)
	for j := range ops {
		ops[j] = "GET /items" + strconv.Itoa(j) + "/{id}"
	}
	shapes := []struct {
		name string
		spec func(id string) []string
		req  func(id string) (host, path string)
	}{
		{"basePath", func(id string) []string { return append([]string{id, "/" + id, "*"}, ops...) },
			func(id string) (string, string) { return "api.example.com", "/" + id + "/items9/42" }},
		{"host", func(id string) []string { return append([]string{id, "/shop", id + ".example.com"}, ops...) },
			func(id string) (string, string) { return id + ".example.com", "/shop/items9/42" }},
	}
	for _, shape := range shapes {
		for _, n := range []int{10, 10_000} {
			specs := make([][]string, n)
			for i := range n {
				specs[i] = shape.spec("t" + strconv.Itoa(i))
			}
			c := testCatalog(b, specs...)
			host, path := shape.req("t" + strconv.Itoa(n-1))
			b.Run(shape.name+"/"+strconv.Itoa(n), func(b *testing.B) {
				for b.Loop() {
					if op, _ := c.Match(host, "GET", path); op == nil {
						b.Fatal("no match")
					}
				}
			})
		}
	}
}
