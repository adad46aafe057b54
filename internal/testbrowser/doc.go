// Package testbrowser drives a real headless Chromium for tests, through the
// Chrome DevTools Protocol (github.com/chromedp/chromedp). It exists so that
// tests of Tollgate's web pages (the developer portal) run the pages the way
// a user's browser does: real cookies with their flags, real redirects, real
// Content-Security-Policy enforcement, real script execution.
//
// Chromium is Debian's package chromium; scripts/test-deps.sh installs it.
// A test that needs a browser fails when there is none, with a message that
// says so; it is skipped only when TOLLGATE_SKIP_BROWSER is set.
// TOLLGATE_CHROMIUM names another binary.
//
// # Use
//
//	b := testbrowser.New(t)
//	tab := b.NewTab(t)
//	tab.Navigate(portalURL + "/portal/")
//	tab.WaitVisible("#sign-in")
//	tab.Click("#sign-in")
//	tab.SetValue("#login", "alice")
//	tab.Screenshot("login")
//	c, ok := tab.Cookie("tollgate_session")
//	tab.AssertNoErrors() // no console error, exception or CSP violation
//
// Every method of a Tab fails the test (t.Fatal) when its action fails or
// does not finish within the tab's timeout (Timeout, 15 s by default),
// after saving a screenshot of the page; a subtest uses tab.In(t). Do runs
// chromedp actions with the same deadline and returns the error, for tests
// that expect an action to fail. No method sleeps to let the page catch up:
// each waits for a condition, with that deadline.
//
// # One profile per browser
//
// New starts one Chromium process with an empty profile (a fresh
// --user-data-dir) that chromedp removes when the process has exited. The
// tabs of one Browser share its cookies, as the tabs of one user's browser
// do; a second user is a second Browser. The test's cleanup closes the tabs,
// stops the process and its children and removes the profile.
//
// # What the page did wrong
//
// Each tab records, from the moment it opens:
//   - console errors: console.error and console.assert calls, and the
//     browser's own error messages (a failed subresource, a refused script);
//   - uncaught exceptions and unhandled promise rejections;
//   - Content-Security-Policy violations, from a securitypolicyviolation
//     listener installed in every document before the page's own scripts,
//     in an isolated world that the page cannot see or change.
//
// ConsoleErrors, Exceptions and CSPViolations return them; AssertNoErrors
// fails the test if there is any; WaitCSPViolation waits for one that is
// expected (the browser reports violations a moment after they happen).
//
// # Screenshots
//
// Screenshot writes a full-page PNG to $TOLLGATE_ARTIFACTS/screenshots, or
// to artifacts/screenshots at the module root when the variable is not set
// (the directory is git-ignored), named after the test and the given name.
//
// # Flags
//
// Chromium runs headless with --no-sandbox (the tests run as root in CI,
// where Chromium's sandbox cannot start) and with background networking,
// component updates, sync and QUIC off: the machines that run the tests
// have no internet, and without those flags Chromium's own attempts to
// reach Google are refused many at a time.
package testbrowser
