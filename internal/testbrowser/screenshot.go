package testbrowser

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
)

// Screenshot writes a full-page PNG of the tab to the screenshot directory
// (ScreenshotDir), named after the test and name, and returns its path.
func (tab *Tab) Screenshot(name string) string {
	tab.t.Helper()
	path, err := tab.screenshot(name)
	if err != nil {
		tab.t.Fatalf("testbrowser: Screenshot(%s): %v", name, err)
	}
	tab.t.Logf("testbrowser: screenshot %s", path)
	return path
}

func (tab *Tab) screenshot(name string) (string, error) {
	// Its own short deadline: it also runs after another action failed.
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", err
	}
	dir := ScreenshotDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fileName(tab.t.Name())+"-"+fileName(name)+".png")
	return path, os.WriteFile(path, png, 0o644)
}

// fileName keeps letters, digits, '.', '-' and '_', and makes the rest '_':
// a test name has slashes and spaces.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// ScreenshotDir is where Screenshot writes: $TOLLGATE_ARTIFACTS/screenshots,
// or artifacts/screenshots at the root of the module (found from the test's
// working directory, which is its package's directory).
func ScreenshotDir() string {
	if dir := os.Getenv("TOLLGATE_ARTIFACTS"); dir != "" {
		return filepath.Join(dir, "screenshots")
	}
	return filepath.Join(moduleRoot(), "artifacts", "screenshots")
}

var moduleRoot = sync.OnceValue(func() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			return wd
		}
	}
})
