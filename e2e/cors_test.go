package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tollgate/tollgate/internal/testbrowser"
)

// corsPage is a web application's page on an origin of its own: call
// fetches a URL and returns what the page may read of the answer, or the
// name of the error a refused cross-origin fetch throws.
const corsPage = `<!doctype html>
<meta charset="utf-8">
<title>Items app</title>
<script>
async function call(url, init) {
  try {
    const r = await fetch(url, init);
    return {status: r.status, servedBy: r.headers.get("x-served-by"), body: await r.text()};
  } catch (e) {
    return {error: e.name};
  }
}
</script>
<p id="ready">ready</p>
`

// startPage serves corsPage on a new origin; its answer sets a session
// cookie, which only a credentialed fetch sends to the API (cookies do not
// tell ports apart, so the API's host gets it).
func startPage(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "page-session", Path: "/", SameSite: http.SameSiteLaxMode})
		_, _ = w.Write([]byte(corsPage))
	}))
	t.Cleanup(s.Close)
	return s
}

// fetchResult is what call returned in the page.
type fetchResult struct {
	Status   int    `json:"status"`
	ServedBy string `json:"servedBy"`
	Body     string `json:"body"`
	Error    string `json:"error"`
}

// callAPI runs the page's call(url, init) in the tab.
func callAPI(tab *testbrowser.Tab, url string, init map[string]any) fetchResult {
	u, _ := json.Marshal(url)
	i, _ := json.Marshal(init)
	var res fetchResult
	tab.Evaluate(fmt.Sprintf("call(%s, %s)", u, i), &res)
	return res
}

// exchange is one request the browser made and the status of its answer
// (0 while there is none).
type exchange struct {
	Preflight bool
	Method    string
	URL       string
	Status    int64
}

// networkLog records the requests of a tab, preflights included, from the
// DevTools network events.
type networkLog struct {
	mu sync.Mutex
	m  map[network.RequestID]*exchange
}

func recordNetwork(t *testing.T, tab *testbrowser.Tab) *networkLog {
	t.Helper()
	l := &networkLog{m: map[network.RequestID]*exchange{}}
	err := chromedp.Listen(tab.Context(), func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			preflight := ev.Initiator != nil && ev.Initiator.Type == network.InitiatorTypePreflight
			l.m[ev.RequestID] = &exchange{Preflight: preflight, Method: ev.Request.Method, URL: ev.Request.URL}
		case *network.EventResponseReceived:
			if x := l.m[ev.RequestID]; x != nil {
				x.Status = ev.Response.Status
			}
		}
	})
	must(t, err)
	return l
}

// preflight waits for the browser's preflight of url and returns its
// status.
func (l *networkLog) preflight(t *testing.T, url string) int64 {
	t.Helper()
	var status int64
	waitFor(t, "the preflight of "+url, 10*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, x := range l.m {
			if x.Preflight && x.URL == url && x.Status != 0 {
				if x.Method != "OPTIONS" {
					t.Fatalf("a preflight with method %s", x.Method)
				}
				status = x.Status
				return true
			}
		}
		return false
	})
	return status
}

// TestNginxCORS: a page on another origin calls the API through the
// shipped nginx example with fetch in Chromium. A fetch that needs a
// preflight (an apikey header, a JSON body) succeeds and reads the exposed
// header; the preflight was decided by Tollgate without a credential,
// answered 204 by nginx and never reached the backend. A credentialed
// fetch succeeds against the API that allows credentials for the page's
// exact origin, and fails against the one that does not. A page on a third
// origin gets a TypeError, whether its fetch needs a preflight or not.
func TestNginxCORS(t *testing.T) {
	app := startPage(t)
	other := startPage(t)
	tg := startPolicyTollgate(t, app.URL)
	backend := newRecordingBackend(t)
	base := startNginx(t, tg.addrs["http"], backend.Addr())

	b := testbrowser.New(t)
	tab := b.NewTab(t)
	requests := recordNetwork(t, tab)
	tab.Navigate(app.URL + "/")
	tab.WaitVisible("#ready")

	backendGot := func(method, uri string) *recordedRequest {
		for _, r := range backend.all() {
			if r.Method == method && r.URI == uri {
				return &r
			}
		}
		return nil
	}

	// A preflighted fetch: a custom header, POST with a JSON body.
	before := backend.Count()
	res := callAPI(tab, base+"/items/v1/items", map[string]any{
		"method":  "POST",
		"headers": map[string]string{"apikey": keyMobile, "content-type": "application/json"},
		"body":    `{"name":"lamp"}`,
	})
	if res.Error != "" || res.Status != 200 || res.ServedBy != "tollgate" || res.Body != `{"pets":[]}` {
		t.Fatalf("preflighted fetch: %+v", res)
	}
	if status := requests.preflight(t, base+"/items/v1/items"); status != 204 {
		t.Errorf("the browser's preflight got %d, want 204", status)
	}
	if backend.Count() != before+1 {
		t.Fatalf("backend calls %d, want the POST only", backend.Count()-before)
	}
	got := backend.Last()
	if got.Method != "POST" || got.URI != "/items/v1/items" || got.Header.Get("X-Env") != "prod" ||
		got.Header.Get("Origin") != app.URL || got.Header.Get("Apikey") != "" || got.Header.Get("Cookie") != "" {
		t.Errorf("backend got %s %s %v", got.Method, got.URI, got.Header)
	}
	waitFor(t, "the preflight's decision in the log", 10*time.Second, func() bool {
		return tg.countLogs("decision", "method", "OPTIONS", "path", "/items/v1/items", "code", "preflight", "credential", "") == 1
	})

	// A credentialed fetch: the API allows credentials for this exact
	// origin, so the page's cookie goes and the answer is readable.
	res = callAPI(tab, base+"/accounts/v1/me", map[string]any{
		"credentials": "include",
		"headers":     map[string]string{"apikey": keyMobile},
	})
	if res.Error != "" || res.Status != 200 || res.ServedBy != "tollgate" {
		t.Fatalf("credentialed fetch: %+v", res)
	}
	if status := requests.preflight(t, base+"/accounts/v1/me"); status != 204 {
		t.Errorf("the credentialed preflight got %d, want 204", status)
	}
	if r := backendGot("GET", "/accounts/v1/me"); r == nil || r.Header.Get("Cookie") != "session=page-session" {
		t.Errorf("backend got %+v, want the credentialed GET with the page's cookie", r)
	}
	tab.AssertNoErrors()

	// items does not allow credentials: its preflight's answer lacks
	// Access-Control-Allow-Credentials, and the browser stops there.
	before = backend.Count()
	res = callAPI(tab, base+"/items/v1/items?credentialed=1", map[string]any{
		"credentials": "include",
		"headers":     map[string]string{"apikey": keyMobile},
	})
	if res.Error != "TypeError" {
		t.Errorf("credentialed fetch of an API without credentials: %+v, want a TypeError", res)
	}
	if status := requests.preflight(t, base+"/items/v1/items?credentialed=1"); status != 204 {
		t.Errorf("its preflight got %d, want 204", status)
	}
	if backend.Count() != before {
		t.Errorf("the backend got the refused fetch: %+v", backend.Last())
	}

	// A page on a third origin.
	evil := b.NewTab(t)
	evilRequests := recordNetwork(t, evil)
	evil.Navigate(other.URL + "/")
	evil.WaitVisible("#ready")
	before = backend.Count()
	res = callAPI(evil, base+"/items/v1/items?from=other", map[string]any{
		"method":  "POST",
		"headers": map[string]string{"apikey": keyMobile, "content-type": "application/json"},
		"body":    `{}`,
	})
	if res.Error != "TypeError" {
		t.Errorf("preflighted fetch from another origin: %+v, want a TypeError", res)
	}
	if status := evilRequests.preflight(t, base+"/items/v1/items?from=other"); status != 403 {
		t.Errorf("the other origin's preflight got %d, want 403", status)
	}
	if backend.Count() != before {
		t.Errorf("the backend got the other origin's fetch: %+v", backend.Last())
	}
	// A simple request needs no preflight: it is allowed and reaches the
	// backend, but the answer has no Access-Control-Allow-Origin for this
	// origin and the page cannot read it.
	res = callAPI(evil, base+"/items/v1/items?apikey="+keyMobile, map[string]any{})
	if res.Error != "TypeError" {
		t.Errorf("simple fetch from another origin: %+v, want a TypeError", res)
	}
	if r := backendGot("GET", "/items/v1/items"); r == nil || r.Header.Get("Origin") != other.URL {
		t.Errorf("backend got %+v, want the simple GET from the other origin", r)
	}

	for _, r := range backend.all() {
		if r.Method == "OPTIONS" {
			t.Errorf("the backend got a preflight: %+v", r)
		}
	}
	if n := tg.countLogs("decision", "method", "OPTIONS", "allowed", "true"); n != 0 {
		t.Errorf("%d OPTIONS requests allowed", n)
	}
}
