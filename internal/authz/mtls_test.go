package authz

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/testpki"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

const (
	spiffeCart     = "spiffe://cluster.local/ns/shop/sa/cart"
	spiffeCheckout = "spiffe://cluster.local/ns/shop/sa/checkout"
	spiffeOrders   = "spiffe://cluster.local/ns/shop/sa/orders" // the provider's own sidecar
	spiffeStranger = "spiffe://cluster.local/ns/other/sa/x"
	keyCart        = "tgk_test_cart"
	keyOwner       = "tgk_test_owner"
)

// mtlsFixture has a mesh CA, certificates issued by it and by a foreign
// CA, and engines with and without trust in forwarded certificates.
type mtlsFixture struct {
	trusting, plain, noCA *Engine
	certs                 map[string]*x509.Certificate
}

func newMTLSFixture(t testing.TB) *mtlsFixture {
	t.Helper()
	mesh, err := testpki.NewCA("mesh")
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := testpki.NewCA("foreign")
	now := time.Now()
	issue := func(ca *testpki.CA, l testpki.Leaf) *x509.Certificate { return ca.MustIssue(t, l) }
	f := &mtlsFixture{certs: map[string]*x509.Certificate{
		"cart":     issue(mesh, testpki.Leaf{URI: spiffeCart}),
		"partner":  issue(mesh, testpki.Leaf{CommonName: "partner"}), // no URI: pinned by fingerprint
		"expired":  issue(mesh, testpki.Leaf{URI: spiffeCart, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}),
		"foreign":  issue(foreign, testpki.Leaf{URI: spiffeCart}),
		"server":   issue(mesh, testpki.Leaf{URI: spiffeCart, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}),
		"pinnedFx": issue(foreign, testpki.Leaf{CommonName: "pinned-foreign"}),
	}}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := testpki.WriteFile(caFile, mesh.Cert); err != nil {
		t.Fatal(err)
	}
	fp := func(name string) string { d := keys.Fingerprint(f.certs[name]); return d.String() }
	body := `
apis:
  - id: orders
    basePath: /orders
    security: [mtls]
    operations: [{path: /**}]
  - id: mixed
    basePath: /mixed
    security: ["mtls+apiKey", apiKey]
    operations: [{path: /**}]
applications:
  - {id: cart, principals: ["` + spiffeCart + `"]}
  - {id: shop, principals: ["spiffe://cluster.local/ns/shop/sa/*"]}
  - {id: partner, certificates: ["` + fp("partner") + `", "` + fp("pinnedFx") + `"]}
  - {id: owner}
subscriptions:
  - {application: cart, api: orders, state: active}
  - {application: shop, api: orders, state: active}
  - {application: partner, api: orders, state: active}
  - {application: cart, api: mixed, state: active}
  - {application: owner, api: mixed, state: active}
apiKeys:
  - {application: cart, sha256: ` + sha(keyCart) + `}
  - {application: owner, sha256: ` + sha(keyOwner) + `}
`
	engine := func(mtls string) *Engine {
		snap, err := config.Compile([]byte(mtls+body), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		return NewEngine(Options{Config: model.NewStore(snap.Snapshot)})
	}
	f.trusting = engine("mtls: {trustForwardedClientCert: true, caFile: " + caFile + ", forwardedBy: " + spiffeOrders + "}\n")
	f.plain = engine("mtls: {caFile: " + caFile + "}\n")
	f.noCA = engine("")
	return f
}

// mreq is a request to path from a caller described by its principal,
// certificate and headers (name, value pairs).
func mreq(path, principal, cert string, headers ...string) *Request {
	r := req("GET", path, headers...)
	r.SourcePrincipal, r.SourceCertificate = principal, cert
	return r
}

func TestMTLS(t *testing.T) {
	f := newMTLSFixture(t)
	pem := func(name string) string { return testpki.URLEncoded(f.certs[name]) }
	xfcc := func(by, rest string) string { return "By=" + by + ";" + rest }
	// what an Istio sidecar appends: the peer's identity, signed off by itself
	sidecarXFCC := xfcc(spiffeOrders, `Hash=abc;Subject="";URI=`+spiffeCart)

	cases := []struct {
		name   string
		engine *Engine
		req    *Request
		status int
		code   string
		app    string
	}{
		{"sidecar principal", f.plain, mreq("/orders/1", spiffeCart, "", "x-forwarded-client-cert", sidecarXFCC), 200, "", "cart"},
		{"principal by pattern", f.plain, mreq("/orders/1", spiffeCheckout, ""), 200, "", "shop"},
		{"unknown principal", f.plain, mreq("/orders/1", spiffeStranger, ""), 403, "900908", ""},
		{"no identity", f.plain, mreq("/orders/1", "", ""), 401, "900902", ""},
		{"edge certificate with a SPIFFE ID", f.plain, mreq("/orders/1", "", pem("cart")), 200, "", "cart"},
		{"pinned certificate without URI", f.plain, mreq("/orders/1", "", pem("partner")), 200, "", "partner"},
		{"pinned certificate with its subject as principal", f.plain, mreq("/orders/1", "CN=partner", pem("partner")), 200, "", "partner"},
		{"unknown principal and a failing certificate", f.plain, mreq("/orders/1", spiffeStranger, pem("foreign")), 401, "900901", ""},
		{"expired certificate", f.plain, mreq("/orders/1", "", pem("expired")), 401, "900901", ""},
		{"certificate of another CA", f.plain, mreq("/orders/1", "", pem("foreign")), 401, "900901", ""},
		{"certificate without client auth", f.plain, mreq("/orders/1", "", pem("server")), 401, "900901", ""},
		{"garbage certificate", f.plain, mreq("/orders/1", "", "%zz"), 401, "900901", ""},
		{"spoofed XFCC is not believed", f.plain, mreq("/orders/1", "", "", "x-forwarded-client-cert", sidecarXFCC), 401, "900902", ""},
		{"trusted XFCC", f.trusting, mreq("/orders/1", "", "", "x-forwarded-client-cert", sidecarXFCC), 200, "", "cart"},
		{"trusted XFCC uses the nearest element", f.trusting, mreq("/orders/1", "", "",
			"x-forwarded-client-cert", xfcc("spiffe://edge", "URI="+spiffeStranger)+","+sidecarXFCC), 200, "", "cart"},
		{"XFCC from another proxy", f.trusting, mreq("/orders/1", "", "", "x-forwarded-client-cert", xfcc(spiffeStranger, "URI="+spiffeCart)), 401, "900901", ""},
		{"malformed XFCC", f.trusting, mreq("/orders/1", "", "", "x-forwarded-client-cert", `By=`+spiffeOrders+`;Subject="open`), 401, "900901", ""},
		{"XFCC with a certificate", f.trusting, mreq("/orders/1", "", "", "x-forwarded-client-cert", xfcc(spiffeOrders, `Cert="`+pem("cart")+`"`)), 200, "", "cart"},
		{"XFCC with an expired certificate", f.trusting, mreq("/orders/1", "", "", "x-forwarded-client-cert", xfcc(spiffeOrders, `Cert="`+pem("expired")+`"`)), 401, "900901", ""},
		{"XFCC without identity", f.trusting, mreq("/orders/1", "", "", "x-forwarded-client-cert", xfcc(spiffeOrders, `Subject="CN=x"`)), 401, "900901", ""},
		{"the principal comes before XFCC", f.trusting, mreq("/orders/1", spiffeStranger, "", "x-forwarded-client-cert", sidecarXFCC), 403, "900908", ""},
		{"without a CA, only pins count", f.noCA, mreq("/orders/1", "", pem("pinnedFx")), 200, "", "partner"},
		{"without a CA, a URI SAN is not trusted", f.noCA, mreq("/orders/1", "", pem("foreign")), 403, "900908", ""},
		{"workload and key of one application", f.plain, mreq("/mixed/x", spiffeCart, "", "apikey", keyCart), 200, "", "cart"},
		{"workload and key disagree", f.plain, mreq("/mixed/x", spiffeCart, "", "apikey", keyOwner), 403, "900908", ""},
		{"key alone takes the second alternative", f.plain, mreq("/mixed/x", "", "", "apikey", keyOwner), 200, "", "owner"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.engine.Decide(context.Background(), tc.req)
			status := 200
			if !d.Allowed {
				status = d.Denial.Status
			}
			if status != tc.status || d.Code() != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", status, d.Code(), d.Denial.Description, tc.status, tc.code)
			}
			if tc.app != "" && (d.Identity.Application == nil || d.Identity.Application.ID != tc.app) {
				t.Fatalf("application %v, want %s", d.Identity.Application, tc.app)
			}
		})
	}
}

func TestMTLSHeadersAndMetadata(t *testing.T) {
	f := newMTLSFixture(t)
	s := NewGRPCServer(f.plain)
	in := checkRequest("GET", "/orders/42", map[string]string{"x-authenticated-userid": "spoofed"}, nil)
	in.Attributes.Source.Principal = spiffeCart
	resp, err := s.Check(context.Background(), in)
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("%v %v", resp, err)
	}
	h := upstreamHeaders(resp.GetOkResponse())
	if h["x-credential-type"] != "mtls" || h["x-authenticated-userid"] != spiffeCart || h["x-consumer-id"] != "cart" {
		t.Errorf("headers %v", h)
	}
	if got := wireMetadata(t, resp)["source_principal"]; got != spiffeCart {
		t.Errorf("metadata source_principal = %q", got)
	}
	// The AND set reports both credentials.
	d := f.plain.Decide(context.Background(), mreq("/mixed/1", spiffeCart, "", "apikey", keyCart))
	if d.Identity.Credential != "mtls+apiKey" || !strings.Contains(d.Upstream[4], "mtls") {
		t.Errorf("credential %q", d.Identity.Credential)
	}
}

// TestCertVerdictsOutliveKeyChanges: a verified certificate is not
// verified again when only API keys change (the control plane's most
// frequent update), and is when the CA bundle does.
func TestCertVerdictsOutliveKeyChanges(t *testing.T) {
	f := newMTLSFixture(t)
	a := f.plain.schemes[catalog.SchemeMTLS].(*mtlsAuthenticator)
	store := f.plain.config.(*model.Store)
	cert := testpki.URLEncoded(f.certs["cart"])
	decide := func(what string) {
		t.Helper()
		if d := f.plain.Decide(context.Background(), mreq("/orders/x", "", cert)); !d.Allowed {
			t.Fatalf("%s: denied %s", what, d.Code())
		}
	}
	decide("first use")
	added, problems := model.CompileAPIKey(&tollgatev1.ApiKey{Application: "owner", Sha256: sha("tgk_new")}, store.Load().Applications)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	next := model.ApplyAPIKeys(store.Load(), []keys.Entry{added}, nil)
	store.Swap(next)
	decide("after a key change")
	if n := a.verified.Load(); n != 1 {
		t.Errorf("%d verifications after a key change, want 1", n)
	}
	// A reloaded bundle (a new pool, whatever it holds) verifies again.
	reloaded := *next
	reloaded.MTLS.CAPool = next.MTLS.CAPool.Clone()
	store.Swap(&reloaded)
	decide("after the CA bundle is reloaded")
	if n := a.verified.Load(); n != 2 {
		t.Errorf("%d verifications after the CA bundle changed, want 2", n)
	}
}
