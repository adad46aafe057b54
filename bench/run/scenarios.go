package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/keys"
)

const benchKey = "tgk_bench_key_for_measurements"

// scenario is one kind of Check, with the config Tollgate runs it under.
type scenario struct {
	name    string
	config  string
	request *authv3.CheckRequest
	allowed bool // the answer the scenario must get
	redis   bool // needs a Redis store
}

// checkRequest is shaped like the edge Envoy's: a dozen headers, peer
// addresses, the request's attributes.
func checkRequest(method, path string, extra map[string]string, principal string) *authv3.CheckRequest {
	headers := map[string]string{
		":authority": "api.example.com", ":method": method, ":path": path, ":scheme": "https",
		"accept": "application/json", "user-agent": "bench-client/1.0", "x-forwarded-proto": "https",
		"x-request-id": "5b8f6a1e-94b6-4b8e-9d7c-0e8d1f2a3b4c", "x-envoy-expected-rq-timeout-ms": "15000",
		"x-forwarded-for": "203.0.113.50", "content-length": "0",
	}
	for k, v := range extra {
		headers[k] = v
	}
	addr := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: addr("203.0.113.50", 51234), Principal: principal},
		Destination: &authv3.AttributeContext_Peer{Address: addr("10.0.0.9", 8443)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "9311", Method: method, Path: path, Host: "api.example.com", Scheme: "https", Protocol: "HTTP/2", Headers: headers,
		}},
	}}
}

// policiesScenario is "API key allow" on an operation with three request
// policies and a CEL rule: the same Check but for its path and one more
// header (the one renamed).
func policiesScenario(plain scenario) scenario {
	return scenario{name: "API key allow + 3 request policies + 1 CEL rule", config: plain.config, allowed: true,
		request: checkRequest("GET", "/mediated/v1/orders/42", map[string]string{"apikey": benchKey, "x-old": "legacy"}, "")}
}

// scenarios writes their configs to dir. redisAddr is the store of the
// Redis scenario.
func scenarios(dir, redisAddr string, profiling bool) ([]scenario, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := keys.NewSigner(key)
	if err != nil {
		return nil, err
	}
	jwksPath := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksPath, signer.PublicJWKS(), 0o600); err != nil {
		return nil, err
	}
	now := time.Now()
	token, err := signer.Sign(jwt.MapClaims{"iss": "https://idp.bench", "aud": "catalog", "sub": "user-1",
		"azp": "bench-client", "scope": "catalog:read catalog:write", "iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix()})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(benchKey))

	common := fmt.Sprintf(`
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0", admin: "127.0.0.1:0"}
issuers:
  - {name: idp, issuer: "https://idp.bench", jwksFile: %s, audiences: [catalog]}
rateLimitPolicies:
  - {name: roomy, limits: [{requests: 1000000, per: 1s}, {requests: 80000000000, per: 24h}]}
apis:
  - id: catalog
    basePath: /catalog/v1
    security: [jwt]
    operations:
      - {path: /products, methods: [GET], scopes: ["catalog:read"]}
      - {path: "/products/{id}", methods: [GET], scopes: ["catalog:read"]}
      - {path: "/products/{id}", methods: [PUT, DELETE], scopes: ["catalog:write"]}
  - id: partner
    basePath: /partner/v1
    security: [apiKey]
    operations:
      - {path: /orders, methods: [GET, POST]}
      - {path: "/orders/{id}", methods: [GET]}
  - id: mediated
    basePath: /mediated/v1
    security: [apiKey]
    operations:
      - path: "/orders/{id}"
        methods: [GET]
        policies:
          request:
            - {setHeader: {name: x-env, value: prod}}
            - {renameHeader: {from: x-old, to: x-new}}
            - {rewritePath: "/v2/orders/{id}"}
          rules:
            - {expr: "request.method != 'DELETE' || 'admin' in identity.scopes"}
  - id: orders
    basePath: /orders
    security: [mtls]
    operations:
      - {path: "/{id}", methods: [GET]}
applications:
  - {id: web, name: Web shop, clientIds: [bench-client]}
  - {id: acme, name: ACME}
  - {id: cart, name: Cart, principals: ["spiffe://cluster.local/ns/shop/sa/cart"]}
subscriptions:
  - {application: web, api: catalog, rateLimit: roomy, state: active}
  - {application: acme, api: partner, state: active}
  - {application: acme, api: mediated, state: active}
  - {application: cart, api: orders, state: active}
apiKeys:
  - {application: acme, sha256: %s}
`, jwksPath, hex.EncodeToString(sum[:]))
	if profiling {
		common += "admin: {pprof: true}\n"
	}
	write := func(name, extra string) (string, error) {
		path := filepath.Join(dir, name+".yaml")
		return path, os.WriteFile(path, []byte(common+extra), 0o600)
	}
	memory, err := write("memory", "")
	if err != nil {
		return nil, err
	}
	withRedis, err := write("redis", fmt.Sprintf("rateLimit: {store: redis, redis: {addrs: [%q], timeout: 100ms}}\n", redisAddr))
	if err != nil {
		return nil, err
	}
	bearer := map[string]string{"authorization": "Bearer " + token}
	return []scenario{
		{name: "API key allow", config: memory, allowed: true,
			request: checkRequest("GET", "/partner/v1/orders/42", map[string]string{"apikey": benchKey}, "")},
		{name: "cached JWT + subscription + scopes + memory rate limit", config: memory, allowed: true,
			request: checkRequest("GET", "/catalog/v1/products/42", bearer, "")},
		{name: "cached JWT + subscription + scopes + Redis rate limit", config: withRedis, allowed: true, redis: true,
			request: checkRequest("GET", "/catalog/v1/products/42", bearer, "")},
		{name: "mTLS principal", config: memory, allowed: true,
			request: checkRequest("GET", "/orders/42", nil, "spiffe://cluster.local/ns/shop/sa/cart")},
		{name: "deny (bad API key)", config: memory, allowed: false,
			request: checkRequest("GET", "/partner/v1/orders/42", map[string]string{"apikey": "tgk_wrong"}, "")},
	}, nil
}
