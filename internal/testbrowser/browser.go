package testbrowser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Option changes how New starts the browser.
type Option func(*options)

type options struct {
	width, height int
	timeout       time.Duration
}

// WindowSize sets the size of the browser window, and so the viewport of
// every tab: 1280×900 by default.
func WindowSize(width, height int) Option {
	return func(o *options) { o.width, o.height = width, height }
}

// Timeout sets how long one action of a tab (a navigation, a wait, a click)
// may take before the test fails: 15 s by default, generous for a loaded CI
// machine and still short enough to fail before the test binary's timeout.
func Timeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// startTimeout bounds Chromium's start and the opening of a tab: a cold
// start on a loaded machine takes a few seconds.
const startTimeout = 30 * time.Second

// Browser is one Chromium process with its own empty profile.
type Browser struct {
	ctx    context.Context // the browser's chromedp context; its first tab is unused
	opts   options
	output *tailBuffer
}

// New starts Chromium for the test and stops it, removing its profile, at
// cleanup. Chromium missing is a failure that says how to install it; with
// TOLLGATE_SKIP_BROWSER set, the test is skipped instead.
func New(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	if os.Getenv("TOLLGATE_SKIP_BROWSER") != "" {
		t.Skip("TOLLGATE_SKIP_BROWSER is set: skipping a test that needs Chromium")
	}
	path, err := chromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	b := &Browser{opts: options{width: 1280, height: 900, timeout: 15 * time.Second}, output: &tailBuffer{max: 16 << 10}}
	for _, o := range opts {
		o(&b.opts)
	}

	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(b.opts.width, b.opts.height),
		chromedp.CombinedOutput(b.output),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b.ctx = ctx
	t.Cleanup(func() {
		// Close gracefully first, so that Chromium ends its children
		// itself; the allocator then kills what is left, waits for the
		// process and removes the profile.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_ = chromedp.Cancel(cctx)
		ccancel()
		cancel()
		allocCancel()
	})
	// The first action starts the process. Its context must not carry a
	// deadline (the browser would die with it), so a timer cancels it.
	if err := within(startTimeout, cancel, func() error { return chromedp.Do(ctx) }); err != nil {
		t.Fatalf("testbrowser: starting %s: %v\nChromium's output:\n%s", path, err, b.output)
	}
	return b
}

// chromiumPath finds Debian's chromium, or the binary TOLLGATE_CHROMIUM
// names.
func chromiumPath() (string, error) {
	if p := os.Getenv("TOLLGATE_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("testbrowser: chromium not found: run scripts/test-deps.sh " +
		"(installs Debian's chromium), or set TOLLGATE_SKIP_BROWSER=1 to skip browser tests")
}

// within runs f and cancels its context (with cancel) if it takes longer
// than d: for the first action on a chromedp context, whose context must
// outlive the action.
func within(d time.Duration, cancel context.CancelFunc, f func() error) error {
	timer := time.AfterFunc(d, cancel)
	err := f()
	if !timer.Stop() {
		return fmt.Errorf("did not finish within %v: %w", d, err)
	}
	return err
}

// tailBuffer keeps the last max bytes written to it: Chromium's output, for
// the message of a failed start.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = w.buf[over:]
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(bytes.TrimSpace(w.buf))
}
