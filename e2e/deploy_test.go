package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/testpki"
	"github.com/tollgate/tollgate/internal/testredis"
)

// The example keys the overlays' configs hold hashes of.
const (
	exampleAcmeKey = "tgk_example_acme_key_replace_me"
	exampleCartKey = "tgk_example_cart_key_replace_me"
)

// overlayConfig loads the Tollgate config of a deploy/istio overlay — its
// bootstrap with the resources its control plane serves, as one file —
// and points what lives outside the test (listeners, the IdP, Redis) at
// the test's own.
func overlayConfig(t *testing.T, overlay string, idp *identityProvider, redisAddr string) string {
	t.Helper()
	app := filepath.Join("..", "deploy", "istio", "overlays", overlay, "app")
	boot, err := os.ReadFile(filepath.Join(app, "tollgate.yaml"))
	must(t, err)
	resources, err := os.ReadFile(filepath.Join(app, "resources.yaml"))
	must(t, err)
	data := regexp.MustCompile(`(?ms)^controlPlane:\n(?:[ #].*?\n)*`).ReplaceAllString(string(boot), "") + "\n" + string(resources)
	cfg := regexp.MustCompile(`(?m)^listen: .*$`).ReplaceAllString(data,
		`listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}`)
	cfg = regexp.MustCompile(`redis: \{addrs: \["[^"]+"\]`).ReplaceAllString(cfg, `redis: {addrs: ["`+redisAddr+`"]`)
	if idp != nil {
		cfg = strings.Replace(cfg, "jwksUri: https://idp.example.com/.well-known/jwks.json",
			"jwksUri: "+idp.URL+"/jwks.json\n    jwksCaFile: "+idp.CAFile, 1)
	}
	cfg = strings.Replace(cfg, "analytics: {events: stdout}", "", 1)
	path := filepath.Join(t.TempDir(), overlay+".yaml")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

// verdict is what a CheckResponse says, in test terms.
type verdict struct {
	allowed  bool
	code     string
	headers  map[string]string // upstream headers on allow
	response map[string]string // headers for the client
	metadata map[string]string
}

func decide(t *testing.T, e *enforcer, req *authv3.CheckRequest) verdict {
	t.Helper()
	resp, err := e.AuthClient().Check(context.Background(), req)
	must(t, err)
	v := verdict{headers: map[string]string{}, response: map[string]string{}, metadata: map[string]string{}}
	for k, f := range resp.GetDynamicMetadata().GetFields() {
		v.metadata[k] = f.GetStringValue()
	}
	if ok := resp.GetOkResponse(); ok != nil {
		v.allowed = true
		for _, h := range ok.GetHeaders() {
			v.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		for _, h := range ok.GetResponseHeadersToAdd() {
			v.response[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		return v
	}
	var body map[string]string
	_ = json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
	v.code = body["code"]
	return v
}

// TestDeployedRoles runs the config each deploy/istio overlay ships and
// sends it the CheckRequests its caller sends: the edge Envoy
// (context_extensions and the client certificate), the Istio ingress
// gateway (the client's headers; the edge gateway's principal when the
// edge forwards over mTLS) and a provider's sidecar (the caller's SPIFFE
// principal and the XFCC it appends).
func TestDeployedRoles(t *testing.T) {
	idp := newIdentityProvider(t)
	signer, _ := newSigner(t)
	idp.publish(t, signer)
	redis := testredis.Start(t)
	catalogToken := func(scope string) string {
		now := time.Now()
		tok, err := signer.Sign(jwt.MapClaims{"iss": "https://idp.example.com", "aud": "catalog", "sub": "shopper-17",
			"azp": "storefront-web", "scope": scope, "email": "shopper@example.com", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		must(t, err)
		return tok
	}

	t.Run("edge", func(t *testing.T) {
		e := startEnforcerAt(t, overlayConfig(t, "edge", idp, redis.Addr))
		partnerCA, err := testpki.NewCA("partner-ca")
		must(t, err)
		acmeCert := partnerCA.MustIssue(t, testpki.Leaf{CommonName: "acme", URI: "spiffe://partners.example.com/acme"})
		otherCert := partnerCA.MustIssue(t, testpki.Leaf{CommonName: "other", URI: "spiffe://partners.example.com/other"})

		v := decide(t, e, edgeCheck(nil, "", "catalog-v1", "GET", "/catalog/v1/products",
			map[string]string{"authorization": "Bearer " + catalogToken("catalog:read")}))
		if !v.allowed || v.headers["x-consumer-id"] != "storefront" || v.headers["x-authenticated-userid"] != "shopper-17" ||
			v.metadata["api"] != "catalog-v1" || v.metadata["operation"] != "/products" {
			t.Fatalf("catalog read: %+v", v)
		}
		if v := decide(t, e, edgeCheck(nil, "", "catalog-v1", "POST", "/catalog/v1/products",
			map[string]string{"authorization": "Bearer " + catalogToken("catalog:read")})); v.allowed || v.code != "900910" {
			t.Fatalf("catalog write without the scope: %+v", v)
		}
		// Envoy derives the principal from the certificate's URI SAN and sends both.
		v = decide(t, e, edgeCheck(acmeCert, "spiffe://partners.example.com/acme", "partner-v1", "GET", "/partner/v1/orders/42", nil))
		if !v.allowed || v.headers["x-consumer-id"] != "acme" || v.headers["x-credential-type"] != "mtls" ||
			v.response["ratelimit-limit"] != "100" || v.metadata["source_principal"] != "spiffe://partners.example.com/acme" {
			t.Fatalf("partner with a certificate: %+v", v)
		}
		if v := decide(t, e, edgeCheck(otherCert, "spiffe://partners.example.com/other", "partner-v1", "GET", "/partner/v1/orders/42", nil)); v.allowed || v.code != "900908" {
			t.Fatalf("unknown partner certificate: %+v", v)
		}
		if v := decide(t, e, edgeCheck(nil, "", "partner-v1", "GET", "/partner/v1/orders/42", map[string]string{"apikey": exampleAcmeKey})); !v.allowed || v.headers["x-credential-type"] != "apiKey" {
			t.Fatalf("partner with an API key: %+v", v)
		}
		if v := decide(t, e, edgeCheck(nil, "", "partner-v1", "GET", "/partner/v1/orders/42", nil)); v.allowed || v.code != "900902" {
			t.Fatalf("partner without credentials: %+v", v)
		}
	})

	t.Run("ingress", func(t *testing.T) {
		e := startEnforcerAt(t, overlayConfig(t, "ingress", idp, redis.Addr))
		v := decide(t, e, ingressCheck("", "/catalog/v1/products/9", map[string]string{"authorization": "Bearer " + catalogToken("catalog:read")}))
		if !v.allowed || v.headers["x-user-email"] != "shopper@example.com" || v.headers["x-consumer-id"] != "storefront" {
			t.Fatalf("catalog through the ingress gateway: %+v", v)
		}
		if v := decide(t, e, ingressCheck("", "/catalog/v1/health", nil)); !v.allowed {
			t.Fatalf("public health check: %+v", v)
		}
		v = decide(t, e, ingressCheck("", "/partner/v1/orders", map[string]string{"apikey": exampleAcmeKey}))
		if !v.allowed || v.headers["x-consumer-id"] != "acme" || v.response["ratelimit-limit"] != "100" {
			t.Fatalf("partner key through the ingress gateway: %+v", v)
		}
		if v := decide(t, e, ingressCheck("", "/partner/v1/orders", map[string]string{"apikey": "tgk_guess"})); v.allowed || v.code != "900901" {
			t.Fatalf("wrong key: %+v", v)
		}
		// Forwarded by the edge gateway over mTLS: its identity is no credential here.
		if v := decide(t, e, ingressCheck(principalEdge, "/partner/v1/orders", nil)); v.allowed || v.code != "900902" {
			t.Fatalf("edge gateway principal without credentials: %+v", v)
		}
		if v := decide(t, e, ingressCheck("", "/unknown/api", nil)); v.allowed || v.code != "404" {
			t.Fatalf("unmatched path: %+v", v)
		}
	})

	t.Run("internal", func(t *testing.T) {
		e := startEnforcerAt(t, overlayConfig(t, "internal", nil, redis.Addr))
		checkout := "spiffe://cluster.local/ns/shop/sa/checkout"
		v := decide(t, e, sidecarCheck(principalCart, "GET", "/orders/7", nil))
		if !v.allowed || v.headers["x-consumer-id"] != "cart" || v.headers["x-authenticated-userid"] != principalCart ||
			v.metadata["source_principal"] != principalCart || v.response["ratelimit-limit"] != "200" {
			t.Fatalf("cart reads an order: %+v", v)
		}
		if v := decide(t, e, sidecarCheck(checkout, "DELETE", "/orders/7", nil)); v.allowed || v.code != "900902" {
			t.Fatalf("delete without the key: %+v", v)
		}
		if v := decide(t, e, sidecarCheck(principalCart, "DELETE", "/orders/7", map[string]string{"apikey": exampleCartKey})); !v.allowed || v.headers["x-credential-type"] != "mtls+apiKey" {
			t.Fatalf("delete with workload and key: %+v", v)
		}
		if v := decide(t, e, sidecarCheck(checkout, "DELETE", "/orders/7", map[string]string{"apikey": exampleCartKey})); v.allowed || v.code != "900908" {
			t.Fatalf("checkout with cart's key: %+v", v)
		}
		if v := decide(t, e, sidecarCheck(principalBatch, "GET", "/inventory/sku/1", nil)); !v.allowed || v.headers["x-consumer-id"] != "batch-jobs" {
			t.Fatalf("batch job reads inventory: %+v", v)
		}
		if v := decide(t, e, sidecarCheck(principalBatch, "GET", "/orders/7", nil)); v.allowed || v.code != "900908" {
			t.Fatalf("batch job on orders (not subscribed): %+v", v)
		}
	})
}
