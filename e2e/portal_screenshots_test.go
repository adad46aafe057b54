package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testbrowser"
)

// TestPortalScreenshots refreshes the README's pictures of the portal in
// docs/portal (make portal-screenshots). It runs only when asked:
// TOLLGATE_DOC_SCREENSHOTS=1.
func TestPortalScreenshots(t *testing.T) {
	if os.Getenv("TOLLGATE_DOC_SCREENSHOTS") == "" {
		t.Skip("set TOLLGATE_DOC_SCREENSHOTS=1 to refresh docs/portal")
	}
	s := startPortalSetup(t)
	orders := filepath.Join(t.TempDir(), "orders.yaml")
	if err := os.WriteFile(orders, []byte(`{id: orders, name: Orders, basePath: /orders, security: [apiKey], state: published,
  requiresApproval: true, tags: [shop], description: "Orders of the shop: place, list and cancel.",
  operations: [{path: /, methods: [GET, POST]}, {path: "/{id}", methods: [GET, DELETE]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	admin(t, s.cp, "apis", "update", "orders", "--file", orders)
	out := filepath.Join("..", "docs", "portal")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := func(tab *testbrowser.Tab, name string) {
		t.Helper()
		b, err := os.ReadFile(tab.Screenshot(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	alice := testbrowser.New(t).NewTab(t)
	alice.Navigate(s.portal + "/portal/")
	alice.WaitVisible(`[data-api="petstore-v1"]`)
	keep(alice, "catalog")

	signInLocal(alice, s.portal, "alice", "alice-password")
	alice.Navigate(s.portal + "/portal/applications")
	alice.SetValue("#app-name", "Shop front")
	alice.ClickNavigate("#create-app")
	appURL := alice.Location()
	alice.Navigate(s.portal + "/portal/apis/petstore-v1")
	alice.WaitVisible("#reference .opblock")
	keep(alice, "api")
	alice.ClickNavigate("#subscribe")
	alice.SetValue("#key-name", "laptop")
	alice.ClickNavigate("#create-key")
	var key string
	alice.Evaluate(`document.getElementById("new-key-value").value`, &key)
	waitFor(t, "the key reaching the replica", 5*time.Second, func() bool {
		return keyStatusAt(t, s.gateway+"/petstore/v1/pets", key) == http.StatusOK
	})
	for i := 0; i < 40; i++ {
		keyStatusAt(t, s.gateway+"/petstore/v1/pets", key)
	}
	waitFor(t, "the calls in the usage chart", 15*time.Second, func() bool {
		alice.Navigate(appURL)
		n, _ := strconv.Atoi(alice.Text("#usage-requests"))
		return n >= 40
	})
	keep(alice, "application")

	// A second application waits for approval of Orders.
	alice.Navigate(s.portal + "/portal/applications")
	alice.SetValue("#app-name", "Warehouse")
	alice.ClickNavigate("#create-app")
	alice.Navigate(s.portal + "/portal/apis/orders")
	alice.ClickNavigate("#subscribe")

	pat := testbrowser.New(t).NewTab(t)
	signInLocal(pat, s.portal, "pat", "pat-password")
	pat.Navigate(s.portal + "/portal/manage")
	pat.WaitVisible(`#pending button.approve`)
	keep(pat, "manage")
	fmt.Fprintln(os.Stderr, "screenshots written to", out)
}
