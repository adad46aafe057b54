package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/testpki"
)

// Workload identities of the test mesh.
const (
	principalCart   = "spiffe://cluster.local/ns/shop/sa/cart"
	principalOrders = "spiffe://cluster.local/ns/shop/sa/orders"
	principalEdge   = "spiffe://cluster.local/ns/edge/sa/edge-gateway"
	principalBatch  = "spiffe://cluster.local/ns/jobs/sa/batch"
)

// peer is the address part of AttributeContext.Peer.
func peer(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// The three callers, each sending a CheckRequest shaped as that caller
// does.

// sidecarCheck is what the provider's Istio sidecar sends for an inbound
// mesh call (AuthorizationPolicy CUSTOM on the provider): the caller's
// principal from the mTLS handshake, the XFCC the sidecar appended, no
// certificate, Istio's headers.
func sidecarCheck(callerPrincipal, method, path string, extra map[string]string) *authv3.CheckRequest {
	headers := map[string]string{
		":authority": "orders.shop.svc.cluster.local:8080", ":method": method, ":path": path, ":scheme": "http",
		"x-forwarded-proto": "http", "x-request-id": "b2c8a7c4-93f1-4f0e-8d8a-5f3c9a1e2d7b",
		"x-envoy-attempt-count": "1", "user-agent": "Go-http-client/1.1",
		"x-forwarded-client-cert": "By=" + principalOrders + ";Hash=5f1a2b;Subject=\"\";URI=" + callerPrincipal,
	}
	for k, v := range extra {
		headers[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: peer("10.44.1.17", 43512), Principal: callerPrincipal},
		Destination: &authv3.AttributeContext_Peer{Address: peer("10.44.2.9", 8080), Principal: principalOrders},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1523", Method: method, Path: path, Host: "orders.shop.svc.cluster.local:8080",
			Scheme: "http", Protocol: "HTTP/1.1", Headers: headers,
		}},
	}}
}

// ingressCheck is what the Istio ingress gateway sends (CUSTOM provider on
// the gateway). An external client has no principal; a request forwarded
// by the edge gateway over mTLS carries the edge gateway's.
func ingressCheck(principal, path string, extra map[string]string) *authv3.CheckRequest {
	return ingressCheckMethod(principal, "GET", path, extra)
}

func ingressCheckMethod(principal, method, path string, extra map[string]string) *authv3.CheckRequest {
	headers := map[string]string{
		":authority": "api.example.com", ":method": method, ":path": path, ":scheme": "https",
		"x-forwarded-for": "203.0.113.50", "x-forwarded-proto": "https", "x-envoy-external-address": "203.0.113.50",
		"x-request-id": "0f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910", "user-agent": "curl/8.5.0",
	}
	for k, v := range extra {
		headers[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: peer("10.44.0.5", 52100), Principal: principal},
		Destination: &authv3.AttributeContext_Peer{Address: peer("10.44.0.9", 8443), Principal: "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "api.example.com", Scheme: "https", Protocol: "HTTP/2", Headers: headers,
		}},
	}}
}

// edgeCheck is what the edge Envoy sends beside Tollgate: the client's
// certificate (include_peer_certificate), the principal Envoy derived from
// it, and the route's context_extensions naming the API.
func edgeCheck(cert *x509.Certificate, principal, api, method, path string, extra map[string]string) *authv3.CheckRequest {
	headers := map[string]string{
		":authority": "api.example.com", ":method": method, ":path": path, ":scheme": "https",
		"x-request-id": "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6", "user-agent": "partner-client/2.0",
	}
	for k, v := range extra {
		headers[k] = v
	}
	src := &authv3.AttributeContext_Peer{Address: peer("198.51.100.23", 61000), Principal: principal}
	if cert != nil {
		src.Certificate = testpki.URLEncoded(cert)
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            src,
		Destination:       &authv3.AttributeContext_Peer{Address: peer("10.44.3.3", 8443)},
		ContextExtensions: map[string]string{"api": api},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "api.example.com", Scheme: "https", Protocol: "HTTP/2", Headers: headers,
		}},
	}}
}

func TestMeshRoles(t *testing.T) {
	mesh, err := testpki.NewCA("partner-ca")
	must(t, err)
	foreign, _ := testpki.NewCA("foreign")
	partnerCert := mesh.MustIssue(t, testpki.Leaf{CommonName: "partner-a", URI: "spiffe://partners.example.com/partner-a"})
	pinnedCert := mesh.MustIssue(t, testpki.Leaf{CommonName: "partner-b"})
	foreignCert := foreign.MustIssue(t, testpki.Leaf{CommonName: "intruder", URI: "spiffe://partners.example.com/partner-a"})
	caFile := filepath.Join(t.TempDir(), "partner-ca.pem")
	must(t, testpki.WriteFile(caFile, mesh.Cert))
	pinned := keys.Fingerprint(pinnedCert)

	e := startEnforcer(t, `
mtls: {caFile: `+caFile+`}
apis:
  - id: orders                 # internal: called by mesh services
    basePath: /orders
    security: [mtls]
    operations:
      - {path: "/{id}", methods: [GET]}
      - {path: "/{id}", methods: [DELETE], security: ["mtls+apiKey"]}
  - id: petstore               # behind the ingress gateway
    basePath: /petstore/v1
    hosts: [api.example.com]
    security: [apiKey]
    operations: [{path: /pets, methods: [GET]}]
  - id: partner-api            # behind the edge gateway, client certificates
    basePath: /partner
    security: [mtls]
    operations: [{path: /**}]
applications:
  - {id: cart, name: Cart service, principals: ["`+principalCart+`"]}
  - {id: batch-jobs, principals: ["spiffe://cluster.local/ns/jobs/sa/*"]}
  - {id: partner-a, principals: ["spiffe://partners.example.com/partner-a"]}
  - {id: partner-b, certificates: ["`+pinned.String()+`"]}
  - {id: mobile}
subscriptions:
  - {application: cart, api: orders, state: active}
  - {application: partner-a, api: partner-api, state: active}
  - {application: partner-b, api: partner-api, state: active}
  - {application: mobile, api: petstore, state: active}
apiKeys:
  - {application: mobile, sha256: `+sha(keyMobile)+`}
  - {application: cart, sha256: `+sha("tgk_e2e_cart_key")+`}
`)
	client := e.AuthClient()
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		code string // "" = allowed
		app  string
	}{
		// internal gateway: service to service through the provider's sidecar
		{"sidecar: subscribed service", sidecarCheck(principalCart, "GET", "/orders/7", nil), "", "cart"},
		{"sidecar: service not subscribed", sidecarCheck(principalBatch, "GET", "/orders/7", nil), "900908", ""},
		{"sidecar: unknown service", sidecarCheck("spiffe://cluster.local/ns/dev/sa/tool", "GET", "/orders/7", nil), "900908", ""},
		{"sidecar: workload and API key", sidecarCheck(principalCart, "DELETE", "/orders/7", map[string]string{"apikey": "tgk_e2e_cart_key"}), "", "cart"},
		{"sidecar: workload with another app's key", sidecarCheck(principalCart, "DELETE", "/orders/7", map[string]string{"apikey": keyMobile}), "900908", ""},
		{"sidecar: no key where the AND set needs one", sidecarCheck(principalCart, "DELETE", "/orders/7", nil), "900902", ""},

		// in-mesh gateway: the ingress gateway's CUSTOM provider
		{"ingress: external client with a key", ingressCheck("", "/petstore/v1/pets", map[string]string{"apikey": keyMobile}), "", "mobile"},
		{"ingress: external client without credentials", ingressCheck("", "/petstore/v1/pets", nil), "900902", ""},
		{"ingress: external client on an mTLS API", ingressCheck("", "/orders/7", nil), "900902", ""},
		{"ingress: spoofed XFCC does not authenticate", ingressCheck("", "/orders/7",
			map[string]string{"x-forwarded-client-cert": "By=" + principalOrders + ";URI=" + principalCart}), "900902", ""},
		{"ingress: the edge gateway is no API consumer", ingressCheck(principalEdge, "/orders/7", nil), "900908", ""},
		{"ingress: through the edge gateway with a key", ingressCheck(principalEdge, "/petstore/v1/pets", map[string]string{"apikey": keyMobile}), "", "mobile"},

		// edge gateway: client certificates, route names the API
		{"edge: certificate with a SPIFFE ID", edgeCheck(partnerCert, "spiffe://partners.example.com/partner-a", "partner-api", "GET", "/partner/reports", nil), "", "partner-a"},
		{"edge: pinned certificate", edgeCheck(pinnedCert, "CN=partner-b", "partner-api", "GET", "/partner/reports", nil), "", "partner-b"},
		{"edge: certificate of another CA", edgeCheck(foreignCert, "", "partner-api", "GET", "/partner/reports", nil), "900901", ""},
		{"edge: no client certificate", edgeCheck(nil, "", "partner-api", "GET", "/partner/reports", nil), "900902", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Check(context.Background(), tc.req)
			must(t, err)
			if ok := resp.GetOkResponse(); ok != nil {
				if tc.code != "" {
					t.Fatalf("allowed, want %s", tc.code)
				}
				got := map[string]string{}
				for _, h := range ok.GetHeaders() {
					got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
				if got["x-consumer-id"] != tc.app {
					t.Fatalf("x-consumer-id %q, want %s (%v)", got["x-consumer-id"], tc.app, got)
				}
				return
			}
			var body map[string]string
			_ = json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
			if body["code"] != tc.code {
				t.Fatalf("code %s (%s), want %s", body["code"], body["error_description"], tc.code)
			}
		})
	}

	// The mesh identity reaches the access log metadata.
	resp, err := client.Check(context.Background(), sidecarCheck(principalCart, "GET", "/orders/9", nil))
	must(t, err)
	md := resp.GetDynamicMetadata().GetFields()
	if md["source_principal"].GetStringValue() != principalCart || md["credential_type"].GetStringValue() != "mtls" {
		t.Errorf("metadata %v", md)
	}
}
