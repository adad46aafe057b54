package observe_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tollgate/tollgate/internal/analytics"
	"github.com/tollgate/tollgate/internal/authz"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/model"
	"github.com/tollgate/tollgate/internal/observe"
)

// TestEventsNameTheKeyID: a decision for an API key with an id becomes an
// event naming the id, and one for a key without an id names none; no
// event holds a key.
func TestEventsNameTheKeyID(t *testing.T) {
	withID, err := keys.GenerateKeyFrom(rand.NewChaCha8([32]byte{5}))
	if err != nil {
		t.Fatal(err)
	}
	const legacy = "tgk_observe_legacy_key"
	sha := func(k string) string { sum := sha256.Sum256([]byte(k)); return hex.EncodeToString(sum[:]) }
	snap, err := config.Compile([]byte(`
apis: [{id: petstore, basePath: /petstore, security: [apiKey], operations: [{path: /pets}]}]
applications: [{id: mobile}]
subscriptions: [{application: mobile, api: petstore, state: active}]
apiKeys:
  - {application: mobile, name: ci, id: `+withID.ID+`, sha256: `+withID.Digest.String()+`}
  - {application: mobile, name: old, sha256: `+sha(legacy)+`}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sink := analytics.NewSink(&out, 16, nil)
	metrics := analytics.NewMetrics()
	recorder := analytics.Recorder{Metrics: metrics, Joiner: analytics.NewJoiner(analytics.JoinOptions{Sink: sink, Metrics: metrics})}
	s := authz.NewGRPCServer(authz.NewEngine(authz.Options{Config: model.NewStore(snap.Snapshot), Metrics: observe.Decisions(recorder)}))

	cases := []struct {
		key, name, keyID string
	}{
		{withID.Key, "ci", withID.ID},
		{legacy, "old", ""},
	}
	for _, tc := range cases {
		in := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/petstore/pets",
				Headers: map[string]string{"apikey": tc.key}}}}}
		if resp, err := s.Check(context.Background(), in); err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("key %s: %v, %v; want an allow", tc.name, resp, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sink.Run(ctx) // writes what is queued, then returns

	var got []string
	for sc := bufio.NewScanner(&out); sc.Scan(); {
		var e analytics.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		got = append(got, e.KeyID)
		for _, tc := range cases {
			if strings.Contains(sc.Text(), tc.key) {
				t.Errorf("an event holds the key %s: %s", tc.name, sc.Text())
			}
		}
	}
	if len(got) != len(cases) {
		t.Fatalf("%d events, want %d", len(got), len(cases))
	}
	for i, tc := range cases {
		if got[i] != tc.keyID {
			t.Errorf("key %s: event key_id %q, want %q", tc.name, got[i], tc.keyID)
		}
	}
}

// usageLog records the usage a joiner reports.
type usageLog struct {
	mu   sync.Mutex
	seen []analytics.Usage
}

func (l *usageLog) RecordUsage(u analytics.Usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, u)
}

// TestUsageClassFromTheDenial: a denial's HTTP status reaches usage, so
// a blocked API's 503 counts as 5xx; the application is named on an
// allow.
func TestUsageClassFromTheDenial(t *testing.T) {
	snap, err := config.Compile([]byte(`
apis:
  - {id: petstore, basePath: /petstore, security: [apiKey], operations: [{path: /pets}]}
  - {id: closed, basePath: /closed, security: [none], operations: [{path: /**}], blocked: true}
applications: [{id: mobile}]
subscriptions: [{application: mobile, api: petstore, state: active}]
apiKeys: [{application: mobile, sha256: `+hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte("usage-key")); return s[:] }())+`}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	log := &usageLog{}
	metrics := analytics.NewMetrics()
	recorder := analytics.Recorder{Metrics: metrics, Joiner: analytics.NewJoiner(analytics.JoinOptions{Usage: log, Metrics: metrics})}
	s := authz.NewGRPCServer(authz.NewEngine(authz.Options{Config: model.NewStore(snap.Snapshot), Metrics: observe.Decisions(recorder)}))
	for _, path := range []string{"/closed/x", "/petstore/pets"} {
		in := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: path,
				Headers: map[string]string{"apikey": "usage-key"}}}}}
		if _, err := s.Check(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.seen) != 2 {
		t.Fatalf("usage %+v, want two requests", log.seen)
	}
	if u := log.seen[0]; u.Class != analytics.Class5xx || u.API != "closed" {
		t.Errorf("the denial: %+v", u)
	}
	if u := log.seen[1]; u.Class != analytics.Class2xx || u.Application != "mobile" || u.API != "petstore" {
		t.Errorf("the allow: %+v", u)
	}
}
