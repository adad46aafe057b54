package testbrowser

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// CSPViolation is one securitypolicyviolation event: what a
// Content-Security-Policy refused (or, with disposition "report", would
// have refused) in the tab.
type CSPViolation struct {
	Directive   string `json:"directive"`   // the effective directive, e.g. "script-src-elem"
	Blocked     string `json:"blocked"`     // "inline", "eval", or the URL refused
	Document    string `json:"document"`    // the URL of the document
	Source      string `json:"source"`      // the file of the refused code, when known
	Line        int    `json:"line"`        // its line, when known
	Sample      string `json:"sample"`      // the first characters of refused inline code, if the policy has 'report-sample'
	Disposition string `json:"disposition"` // "enforce", or "report" for a report-only policy
	Policy      string `json:"policy"`      // the policy as the server sent it
}

func (v CSPViolation) String() string {
	return fmt.Sprintf("%s refused %s in %s (%s:%d)", v.Directive, v.Blocked, v.Document, v.Source, v.Line)
}

// records is what a tab's listener collected. changed is closed and
// replaced on each record, for the waits.
type records struct {
	mu            sync.Mutex
	changed       chan struct{}
	consoleErrors []string
	exceptions    []string
	violations    []CSPViolation
}

func newRecords() *records { return &records{changed: make(chan struct{})} }

// listen runs in the tab's event loop (chromedp.WithListener): it must not
// block or run commands.
func (r *records) listen(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		r.consoleErrors = append(r.consoleErrors, "console."+string(ev.Type)+": "+argsText(ev.Args)+at(ev.StackTrace))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			desc, _, _ := strings.Cut(d.Exception.Description, "\n")
			text += " " + desc
		}
		r.exceptions = append(r.exceptions, fmt.Sprintf("%s (%s:%d)", text, d.URL, d.LineNumber+1))
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError || isFavicon(ev.Entry.URL) {
			return
		}
		r.consoleErrors = append(r.consoleErrors, fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
	case *runtime.EventBindingCalled:
		if ev.Name != bindingName {
			return
		}
		var v CSPViolation
		if err := json.Unmarshal([]byte(ev.Payload), &v); err != nil {
			v = CSPViolation{Directive: "?", Blocked: ev.Payload}
		}
		r.violations = append(r.violations, v)
	default:
		return
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// isFavicon tells the browser's own request for a site's icon, which
// Chromium makes whatever the page says: its failure is not the page's.
func isFavicon(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Path == "/favicon.ico"
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		var s string
		switch {
		case a.Type == runtime.RemoteObjectTypeString && json.Unmarshal(a.Value, &s) == nil:
		case a.Description != "":
			s = a.Description
		case len(a.Value) > 0:
			s = string(a.Value)
		default:
			s = string(a.Type)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func at(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (%s:%d)", f.URL, f.LineNumber+1)
}

// flush makes the records current: a violation event is dispatched in a
// task of its own after the violation, and reaches Go after the commands
// already answered. A round trip through a page task that runs after it
// orders it before the reply, and the listener sees events before later
// replies.
func (tab *Tab) flush() {
	tab.t.Helper()
	// An error (the document is being replaced) leaves the records as
	// they are; the caller reads what arrived.
	_ = tab.Do(chromedp.Evaluate[chromedp.Void](`new Promise((resolve) => setTimeout(resolve, 0))`, chromedp.EvalAwaitPromise))
}

// ConsoleErrors are the console.error and console.assert calls and the
// browser's error messages (a failed resource, a refused script) so far.
func (tab *Tab) ConsoleErrors() []string {
	tab.t.Helper()
	tab.flush()
	r := tab.records
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.consoleErrors...)
}

// Exceptions are the uncaught exceptions and unhandled promise rejections so
// far.
func (tab *Tab) Exceptions() []string {
	tab.t.Helper()
	tab.flush()
	r := tab.records
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.exceptions...)
}

// CSPViolations are the Content-Security-Policy violations so far.
func (tab *Tab) CSPViolations() []CSPViolation {
	tab.t.Helper()
	tab.flush()
	r := tab.records
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]CSPViolation(nil), r.violations...)
}

// WaitCSPViolation waits for a violation of the directive (its effective
// directive starts with it: "script-src" matches "script-src-elem") and
// returns it.
func (tab *Tab) WaitCSPViolation(directive string) CSPViolation {
	tab.t.Helper()
	deadline := time.NewTimer(tab.timeout)
	defer deadline.Stop()
	r := tab.records
	for {
		r.mu.Lock()
		for _, v := range r.violations {
			if strings.HasPrefix(v.Directive, directive) {
				r.mu.Unlock()
				return v
			}
		}
		changed := r.changed
		seen := append([]CSPViolation(nil), r.violations...)
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			tab.fail("WaitCSPViolation("+directive+")", fmt.Errorf("none within %v; violations seen: %v", tab.timeout, seen))
		}
	}
}

// AssertNoErrors fails the test if the tab has recorded a console error, an
// exception or a CSP violation.
func (tab *Tab) AssertNoErrors() {
	tab.t.Helper()
	tab.flush()
	r := tab.records
	r.mu.Lock()
	defer r.mu.Unlock()
	var problems []string
	for _, e := range r.consoleErrors {
		problems = append(problems, "console error: "+e)
	}
	for _, e := range r.exceptions {
		problems = append(problems, "exception: "+e)
	}
	for _, v := range r.violations {
		problems = append(problems, "CSP violation: "+v.String())
	}
	if len(problems) > 0 {
		tab.t.Errorf("testbrowser: the page had %d problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
}

// ClearErrors forgets what the tab recorded so far: after a step whose
// errors the test expected and checked.
func (tab *Tab) ClearErrors() {
	tab.t.Helper()
	tab.flush()
	r := tab.records
	r.mu.Lock()
	defer r.mu.Unlock()
	r.consoleErrors, r.exceptions, r.violations = nil, nil, nil
}
