package testbrowser

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Tab is one tab of a Browser. Its methods fail the test that opened it, so
// use a tab from that test's goroutine only.
type Tab struct {
	t       testing.TB
	ctx     context.Context
	timeout time.Duration
	records *records
}

// NewTab opens a tab, closed at the test's cleanup. The tab records console
// errors, exceptions and CSP violations from its first document on.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	tab := &Tab{t: t, timeout: b.opts.timeout, records: newRecords()}
	// WithListener hands the events to the records in the order Chromium
	// sent them, each before the reply to any later command: so one round
	// trip makes the records current (flush).
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(tab.records.listen))
	tab.ctx = ctx
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		_ = chromedp.Cancel(cctx)
		ccancel()
		cancel()
	})
	// A new tab is a new renderer process: on a loaded machine that takes
	// longer than a test's action timeout may allow.
	if err := within(startTimeout, cancel, func() error { return chromedp.Do(ctx, installListener()) }); err != nil {
		t.Fatalf("testbrowser: opening a tab: %v", err)
	}
	return tab
}

// In is the same tab failing t instead: for a subtest, which must not fail
// its parent from its own goroutine.
func (tab *Tab) In(t testing.TB) *Tab {
	sub := *tab
	sub.t = t
	return &sub
}

// Context is the tab's chromedp context, for actions this package has no
// method for (with no deadline of its own: see Do).
func (tab *Tab) Context() context.Context { return tab.ctx }

// Do runs chromedp actions in the tab within its timeout and returns their
// error: for a test that expects an action to fail.
func (tab *Tab) Do(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// run is Do that fails the test, saving a screenshot of what the tab showed.
func (tab *Tab) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	if err := tab.Do(actions...); err != nil {
		tab.fail(what, err)
	}
}

// get is run for an action with a value.
func get[T any](tab *Tab, what string, action chromedp.Action[T]) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		tab.fail(what, err)
	}
	return v
}

func (tab *Tab) fail(what string, err error) {
	tab.t.Helper()
	if path, serr := tab.screenshot("failure"); serr == nil {
		tab.t.Logf("testbrowser: the page at the failure: %s", path)
	}
	tab.t.Fatalf("testbrowser: %s: %v", what, err)
}

// Navigate loads url and waits for its load event; it returns the HTTP
// status of the document.
func (tab *Tab) Navigate(url string) int {
	tab.t.Helper()
	resp := get(tab, "Navigate("+url+")", chromedp.NavigateResponse(url))
	if resp == nil { // a same-document navigation has no response
		return 0
	}
	return int(resp.Status)
}

// Location is the URL of the tab's document.
func (tab *Tab) Location() string {
	tab.t.Helper()
	return get(tab, "Location", chromedp.Location())
}

// WaitLocation waits until the tab's URL starts with prefix, through any
// redirects and navigations on the way, and returns it.
func (tab *Tab) WaitLocation(prefix string) string {
	tab.t.Helper()
	deadline := time.Now().Add(tab.timeout)
	last, lastErr := "", error(nil)
	for {
		ctx, cancel := context.WithTimeout(tab.ctx, time.Second)
		loc, err := chromedp.Run(ctx, chromedp.Location())
		cancel()
		if err == nil && strings.HasPrefix(loc, prefix) {
			return loc
		}
		last, lastErr = loc, err // a document that is being replaced answers with an error
		if time.Now().After(deadline) {
			tab.fail("WaitLocation("+prefix+")", fmt.Errorf("still at %q (%v) after %v", last, lastErr, tab.timeout))
		}
		time.Sleep(20 * time.Millisecond) // polling, with the deadline above
	}
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (tab *Tab) WaitVisible(sel string) {
	tab.t.Helper()
	tab.run("WaitVisible("+sel+")", chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitNotPresent waits until no element matches the CSS selector.
func (tab *Tab) WaitNotPresent(sel string) {
	tab.t.Helper()
	tab.run("WaitNotPresent("+sel+")", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// Click waits for the element to be visible and clicks it with the mouse.
// It does not wait for what the click leads to; ClickNavigate does.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	tab.run("Click("+sel+")", chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// ClickNavigate clicks the element and waits for the load event of the page
// the click leads to (after any redirects): a link, or a form's submit
// button.
func (tab *Tab) ClickNavigate(sel string) {
	tab.t.Helper()
	tab.run("ClickNavigate("+sel+")", waitLoad(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)))
}

// Submit submits the form of the element (form.submit(), no click and no
// submit event) and waits for the page the form leads to.
func (tab *Tab) Submit(sel string) {
	tab.t.Helper()
	tab.run("Submit("+sel+")", waitLoad(chromedp.Submit(chromedp.CSS(sel))))
}

func waitLoad(trigger chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.WaitEvent(page.LoadEventFired, nil, trigger)(ctx, t)
		return err
	})
}

// SendKeys focuses the element and types text into it, key by key, after
// what it holds already.
func (tab *Tab) SendKeys(sel, text string) {
	tab.t.Helper()
	tab.run("SendKeys("+sel+")", chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
}

// SetValue sets the value of a form field, replacing what it holds, without
// key events.
func (tab *Tab) SetValue(sel, value string) {
	tab.t.Helper()
	tab.run("SetValue("+sel+")", chromedp.SetValue(chromedp.CSS(sel), value))
}

// Text is the visible text of the first element matching the selector
// (waiting for one to exist).
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	return strings.TrimSpace(get(tab, "Text("+sel+")", chromedp.Text(chromedp.CSS(sel))))
}

// Evaluate runs a JavaScript expression in the page (awaiting it when it is
// a promise) and decodes its JSON value into result, unless result is nil.
// DevTools runs it, so the page's Content-Security-Policy does not apply.
func (tab *Tab) Evaluate(expression string, result any) {
	tab.t.Helper()
	raw := get(tab, "Evaluate("+expression+")", chromedp.Evaluate[[]byte](expression, chromedp.EvalAwaitPromise))
	if result == nil {
		return
	}
	if err := json.Unmarshal(raw, result); err != nil {
		tab.fail("Evaluate("+expression+")", fmt.Errorf("decoding %s: %w", raw, err))
	}
}

// Cookie is a cookie the browser holds, with the flags that a test asserts.
type Cookie struct {
	Name, Value  string
	Domain, Path string
	Expires      time.Time // zero for a session cookie
	HTTPOnly     bool
	Secure       bool
	SameSite     string // "Strict", "Lax", "None", or "" when the Set-Cookie said nothing
}

// Cookies are the cookies the browser would send to the tab's URL. Cookies
// do not tell ports apart: a cookie that another server on the same host
// set is here too.
func (tab *Tab) Cookies() []Cookie {
	tab.t.Helper()
	loc := tab.Location()
	res := get(tab, "Cookies", func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{loc}})
	})
	out := make([]Cookie, 0, len(res.Cookies))
	for _, c := range res.Cookies {
		cookie := Cookie{Name: c.Name, Value: c.Value, Domain: c.Domain, Path: c.Path,
			HTTPOnly: c.HTTPOnly, Secure: c.Secure, SameSite: string(c.SameSite)}
		if !c.Session && c.Expires > 0 {
			cookie.Expires = time.Unix(int64(c.Expires), 0)
		}
		out = append(out, cookie)
	}
	return out
}

// Cookie is the named cookie of Cookies.
func (tab *Tab) Cookie(name string) (Cookie, bool) {
	tab.t.Helper()
	for _, c := range tab.Cookies() {
		if c.Name == name {
			return c, true
		}
	}
	return Cookie{}, false
}

// installListener is the first action of a tab: a binding that only the
// isolated world can call, and a script run in that world at the start of
// every document, before the page's scripts, that reports each
// securitypolicyviolation event through it. An isolated world shares the
// DOM with the page but not its globals, so the page can neither see the
// binding nor remove the listener.
func installListener() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, runtime.AddBinding, runtime.AddBindingParams{Name: bindingName, ExecutionContextName: worldName}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: listenerJS, WorldName: worldName})
		return err
	})
}

const (
	worldName   = "tollgate-testbrowser"
	bindingName = "__tollgateCSPViolation"
	listenerJS  = `document.addEventListener('securitypolicyviolation', (e) => {
  globalThis.` + bindingName + `(JSON.stringify({
    directive: e.effectiveDirective, blocked: e.blockedURI, document: e.documentURI,
    source: e.sourceFile, line: e.lineNumber, sample: e.sample,
    disposition: e.disposition, policy: e.originalPolicy,
  }));
}, true);`
)
