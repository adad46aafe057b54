package testbrowser

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// site is a few pages that exercise what the package records.
func site(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /csp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'report-sample'")
		fmt.Fprint(w, `<!doctype html><title>strict</title><h1 id="hello">Hello</h1>
<script>document.title = "script ran";</script>`)
	})
	mux.HandleFunc("GET /eval", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		fmt.Fprint(w, `<!doctype html><button id="eval">eval</button><script src="/eval.js"></script>`)
	})
	mux.HandleFunc("GET /eval.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `document.getElementById("eval").onclick = () => { try { eval("1"); } catch (e) {} };`)
	})
	mux.HandleFunc("GET /clean", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		fmt.Fprint(w, `<!doctype html><title>clean</title><script src="/clean.js"></script>
<form action="/submitted" method="post"><label for="name">Name</label><input id="name" name="name">
<button type="submit">Send</button></form><a id="next" href="/cookie">next</a>`)
	})
	mux.HandleFunc("GET /clean.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `document.title = "script ran";`)
	})
	mux.HandleFunc("POST /submitted", func(w http.ResponseWriter, r *http.Request) {
		// Post/redirect/get, as the portal's forms do.
		http.Redirect(w, r, "/echo?"+url.Values{"name": {r.FormValue("name")}}.Encode(), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><p id="echo">%s</p>`, strings.ReplaceAll(r.FormValue("name"), "<", "&lt;"))
	})
	mux.HandleFunc("GET /cookie", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cr3t", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.SetCookie(w, &http.Cookie{Name: "theme", Value: "dark", Path: "/", MaxAge: 3600})
		fmt.Fprint(w, `<!doctype html><p id="done">cookies set</p>`)
	})
	mux.HandleFunc("GET /errors", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><img src="/missing.png" alt=""><script src="/errors.js"></script>`)
	})
	mux.HandleFunc("GET /errors.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `console.error("something broke", 42); throw new Error("uncaught on purpose");`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestCSPViolationIsRecorded(t *testing.T) {
	srv := site(t)
	tab := New(t).NewTab(t)

	if status := tab.Navigate(srv.URL + "/csp"); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	tab.WaitVisible("#hello")
	v := tab.WaitCSPViolation("script-src")
	if v.Blocked != "inline" || v.Disposition != "enforce" || !strings.HasPrefix(v.Document, srv.URL+"/csp") {
		t.Errorf("violation %+v: want inline, enforced, in /csp", v)
	}
	if !strings.Contains(v.Sample, "document.title") {
		t.Errorf("sample %q: want the refused code ('report-sample')", v.Sample)
	}
	var title string
	tab.Evaluate(`document.title`, &title)
	if title != "strict" {
		t.Errorf("title %q: the inline script ran", title)
	}
	if got := tab.CSPViolations(); len(got) != 1 {
		t.Errorf("violations %v: want one", got)
	}
	if got := tab.ConsoleErrors(); len(got) != 1 || !strings.Contains(got[0], "Content Security Policy") {
		t.Errorf("console errors %q: want the browser's message about the refused script", got)
	}
	tab.Screenshot("csp")
}

// A violation that a click causes is reported a moment after the click
// returns; CSPViolations waits for the page to get there.
func TestViolationAfterAClickIsSeenAtOnce(t *testing.T) {
	srv := site(t)
	tab := New(t).NewTab(t)
	tab.Navigate(srv.URL + "/eval")
	if got := tab.CSPViolations(); len(got) != 0 {
		t.Fatalf("violations before the click: %v", got)
	}
	for i := 1; i <= 3; i++ {
		tab.Click("#eval")
		got := tab.CSPViolations()
		if len(got) != i || got[i-1].Blocked != "eval" {
			t.Fatalf("after click %d, violations %v: want %d, the last of eval", i, got, i)
		}
	}
}

func TestCleanPageFormAndCookies(t *testing.T) {
	srv := site(t)
	tab := New(t).NewTab(t)

	tab.Navigate(srv.URL + "/clean")
	var title string
	tab.Evaluate(`document.title`, &title)
	if title != "script ran" {
		t.Errorf("title %q: the page's own script did not run", title)
	}
	tab.SendKeys("#name", "Ada <Lovelace>")
	tab.ClickNavigate("button[type=submit]")
	if got := tab.Text("#echo"); got != "Ada <Lovelace>" {
		t.Errorf("echo %q", got)
	}
	if loc := tab.Location(); loc != srv.URL+"/echo?name=Ada+%3CLovelace%3E" {
		t.Errorf("location %s", loc)
	}

	tab.Navigate(srv.URL + "/clean")
	tab.ClickNavigate("#next")
	tab.WaitVisible("#done")
	for _, want := range []struct {
		name, value, sameSite string
		httpOnly, session     bool
	}{
		{name: "session", value: "s3cr3t", sameSite: "Strict", httpOnly: true, session: true},
		{name: "theme", value: "dark", sameSite: "", httpOnly: false, session: false},
	} {
		t.Run(want.name, func(t *testing.T) {
			c, ok := tab.In(t).Cookie(want.name)
			if !ok {
				t.Fatal("no such cookie")
			}
			if c.Value != want.value || c.HTTPOnly != want.httpOnly || c.Secure || c.SameSite != want.sameSite ||
				c.Expires.IsZero() != want.session || c.Path != "/" || c.Domain != "127.0.0.1" {
				t.Errorf("cookie %+v, want %+v and not Secure", c, want)
			}
		})
	}
	var visible string
	tab.Evaluate(`document.cookie`, &visible)
	if visible != "theme=dark" {
		t.Errorf("document.cookie %q: want only the cookie that is not HttpOnly", visible)
	}
	tab.AssertNoErrors()
}

func TestConsoleErrorsAndExceptions(t *testing.T) {
	srv := site(t)
	tab := New(t).NewTab(t)

	tab.Navigate(srv.URL + "/errors")
	consoleErrors, exceptions := tab.ConsoleErrors(), tab.Exceptions()
	// No favicon.ico: Chromium's request for it fails, and is not the
	// page's error.
	all := strings.Join(consoleErrors, "\n")
	if len(consoleErrors) != 2 || !strings.Contains(all, "/missing.png") || !strings.Contains(all, "something broke 42") {
		t.Errorf("console errors %q: want the missing image and the console.error call", consoleErrors)
	}
	if len(exceptions) != 1 || !strings.Contains(exceptions[0], "uncaught on purpose") || !strings.Contains(exceptions[0], "/errors.js") {
		t.Errorf("exceptions %q", exceptions)
	}

	// The failed check of a page with errors, seen from a fake test.
	fake := &recordingTB{TB: t}
	tab.t = fake
	tab.AssertNoErrors()
	tab.t = t
	if !strings.Contains(fake.errors, "something broke") || !strings.Contains(fake.errors, "uncaught on purpose") {
		t.Errorf("AssertNoErrors reported %q", fake.errors)
	}

	tab.ClearErrors()
	tab.AssertNoErrors()
}

// recordingTB records Errorf instead of failing the test.
type recordingTB struct {
	testing.TB
	errors string
}

func (r *recordingTB) Errorf(format string, args ...any) { r.errors += fmt.Sprintf(format, args...) }

func TestDoReturnsTheError(t *testing.T) {
	srv := site(t)
	tab := New(t, Timeout(2*time.Second)).NewTab(t)
	tab.Navigate(srv.URL + "/clean")
	if err := tab.Do(chromedp.WaitVisible(chromedp.CSS("#absent"))); err == nil {
		t.Fatal("waiting for an element that is not there succeeded")
	}
}

func TestScreenshotIsAFullPagePNG(t *testing.T) {
	t.Setenv("TOLLGATE_ARTIFACTS", t.TempDir())
	srv := site(t)
	tab := New(t).NewTab(t)
	tab.Navigate(srv.URL + "/clean")
	path := tab.Screenshot("clean page")
	if !strings.HasSuffix(path, "TestScreenshotIsAFullPagePNG-clean_page.png") {
		t.Errorf("path %s", path)
	}
	png, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("%s is not a PNG", path)
	}
}

// The browser's processes and profile are gone after the test that started
// it.
func TestCleanupStopsChromiumAndRemovesItsProfile(t *testing.T) {
	var pid int
	var profile string
	t.Run("browser", func(t *testing.T) {
		b := New(t)
		pid = chromedp.FromContext(b.ctx).Browser.Process().Pid
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		for arg := range strings.SplitSeq(string(cmdline), "\x00") {
			if dir, ok := strings.CutPrefix(arg, "--user-data-dir="); ok {
				profile = dir
			}
		}
		if _, err := os.Stat(profile); err != nil {
			t.Fatalf("profile %q: %v", profile, err)
		}
	})
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !os.IsNotExist(err) {
		t.Errorf("chromium (pid %d) still runs: %v", pid, err)
	}
	if _, err := os.Stat(profile); !os.IsNotExist(err) {
		t.Errorf("profile %s still there: %v", profile, err)
	}
}
