package adminclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/admin"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/store"
)

const token = "cli-admin-token"

// startAPI runs an admin API over a fresh SQLite store.
func startAPI(t *testing.T) string {
	t.Helper()
	url, _ := startAPIOver(t)
	return url
}

// startAPIOver is startAPI, with the store for tests that write to it
// directly.
func startAPIOver(t *testing.T) (string, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{SQLite: filepath.Join(t.TempDir(), "t.db"), PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sum := sha256.Sum256([]byte(token))
	auth, err := admin.NewAuthenticator(context.Background(), config.AdminAuth{Tokens: []config.AdminToken{
		{Name: "ops", SHA256: hex.EncodeToString(sum[:]), Role: config.RoleAdmin}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin.New(admin.Options{Store: st, Auth: auth}))
	t.Cleanup(srv.Close)
	return srv.URL, st
}

// run is one `enforcer admin` command; it fails the test on an error.
func run(t *testing.T, server string, stdin string, args ...string) string {
	t.Helper()
	out, err := tryRun(server, stdin, args...)
	if err != nil {
		t.Fatalf("admin %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func tryRun(server, stdin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"TOLLGATE_SERVER": server, "TOLLGATE_TOKEN": token}
	err := Run(context.Background(), args, IO{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }})
	return stdout.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommands(t *testing.T) {
	server := startAPI(t)
	run(t, server, "", "policies", "create", "--file", writeFile(t, "gold.yaml", "name: gold\nlimits: [{requests: 10, per: 1s}]\n"))
	run(t, server, "", "apis", "create", "--file", writeFile(t, "api.yaml",
		"id: petstore\nname: PetStore\nbasePath: /petstore\nsecurity: [apiKey]\noperations: [{path: /pets, methods: [GET]}]\n"))
	run(t, server, "", "apis", "publish", "petstore")
	run(t, server, "", "apps", "create", "--id", "mobile", "--name", "Mobile", "--tier", "gold")
	run(t, server, "", "subscriptions", "create", "--app", "mobile", "--api", "petstore")
	created := run(t, server, "", "keys", "create", "mobile", "--name", "ci")
	if !strings.Contains(created, "key: tg_") || !strings.Contains(created, "shown once") {
		t.Fatalf("keys create:\n%s", created)
	}
	tests := []struct {
		args []string
		want []string // substrings of the output
	}{
		{[]string{"apis", "list"}, []string{"ID", "STATE", "petstore", "published"}},
		{[]string{"apps", "list"}, []string{"mobile", "Mobile", "ops", "gold"}},
		{[]string{"subscriptions", "list", "--app", "mobile"}, []string{"mobile/petstore", "active"}},
		{[]string{"keys", "list", "mobile"}, []string{"ci", "tg_", "active"}},
		{[]string{"--output", "json", "apis", "get", "petstore"}, []string{`"basePath": "/petstore"`}},
		{[]string{"subscriptions", "block", "mobile/petstore"}, []string{"blocked"}},
		{[]string{"audit", "--kind", "subscription"}, []string{"update", "mobile/petstore", "create"}},
		{[]string{"whoami"}, []string{"ops", "admin"}},
	}
	for _, tt := range tests {
		out := run(t, server, "", tt.args...)
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("admin %s: no %q in\n%s", strings.Join(tt.args, " "), w, out)
			}
		}
	}
	// The secret was printed once; no listing shows it.
	secret := strings.Fields(strings.SplitN(created, "key: ", 2)[1])[0]
	if out := run(t, server, "", "--output", "json", "keys", "list", "mobile"); strings.Contains(out, secret) {
		t.Fatal("a listing shows the secret")
	}
	for _, bad := range [][]string{{"apis"}, {"apis", "frobnicate"}, {"keys", "revoke", "mobile"}, {"subscriptions", "block", "nope"}, {"--output", "xml", "apis", "list"}} {
		if _, err := tryRun(server, "", bad...); ExitCode(err) != 2 {
			t.Errorf("admin %v: %v, want a usage error", bad, err)
		}
	}
	if _, err := tryRun(server, "", "apis", "get", "nope"); err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), "404") {
		t.Errorf("a missing API: %v", err)
	}
}

// What export writes is a config file's resource sections (an enforcer
// loads it), and importing it into an empty store gives the same state.
func TestExportImportRoundTrip(t *testing.T) {
	server := startAPI(t)
	files := map[string]string{
		"policy": "name: gold\nlimits: [{requests: 10, per: 1s}, {requests: 1000, per: 24h}]\n",
		"issuer": "name: idp\nissuer: https://idp.example.com\njwksUri: https://idp.example.com/jwks.json\n",
		"live":   "id: petstore\nname: PetStore\nbasePath: /petstore\nsecurity: [apiKey, jwt]\nrateLimit: gold\noperations: [{path: /pets, methods: [GET], scopes: [\"pets:read\"]}]\n",
		"draft":  "id: draft\nbasePath: /draft\nsecurity: [jwt]\noperations: [{path: /x}]\n",
	}
	run(t, server, "", "policies", "create", "--file", writeFile(t, "p.yaml", files["policy"]))
	run(t, server, "", "issuers", "create", "--file", writeFile(t, "i.yaml", files["issuer"]))
	run(t, server, "", "apis", "create", "--file", writeFile(t, "a.yaml", files["live"]))
	run(t, server, "", "apis", "create", "--file", writeFile(t, "d.yaml", files["draft"]))
	run(t, server, "", "apis", "publish", "petstore")
	run(t, server, "", "apps", "create", "--id", "mobile", "--tier", "gold")
	run(t, server, "", "apps", "create", "--id", "web")
	run(t, server, "", "subscriptions", "create", "--app", "mobile", "--api", "petstore", "--tier", "gold")
	// A pending subscription: the API asks for approval, a developer would
	// subscribe; here the state is set by the admin.
	if _, _, err := (&Client{Server: server, Token: token}).Do(context.Background(), "POST", "/api/v1/subscriptions",
		map[string]string{"application": "web", "api": "petstore", "state": "pending"}, nil); err != nil {
		t.Fatal(err)
	}
	run(t, server, "", "keys", "create", "mobile", "--name", "ci", "--expires", "2030-01-01T00:00:00Z")
	revoked := run(t, server, "", "--output", "json", "keys", "create", "web", "--name", "old")
	kid := between(revoked, `"id": "`, `"`)
	run(t, server, "", "keys", "revoke", "web", kid)
	run(t, server, "", "apis", "deprecate", "petstore")

	exported := run(t, server, "", "export")
	// An enforcer takes the file as it is.
	if _, err := config.Compile([]byte(exported), func(string) (string, bool) { return "", false }); err != nil {
		t.Fatalf("the export does not load as a config file: %v\n%s", err, exported)
	}
	for _, want := range []string{"management:", "heldApis:", "pendingSubscriptions:", "revokedKeys:", "state: deprecated"} {
		if !strings.Contains(exported, want) {
			t.Errorf("no %q in the export:\n%s", want, exported)
		}
	}

	other := startAPI(t)
	summary := run(t, other, exported, "import", "--file", "-")
	if !strings.Contains(summary, "created") {
		t.Fatalf("import said:\n%s", summary)
	}
	if again := run(t, other, "", "export"); again != exported {
		t.Fatalf("export after import differs:\n--- first\n%s\n--- after import\n%s", exported, again)
	}
	// A second import changes nothing.
	if out := run(t, other, exported, "--output", "json", "import"); strings.Contains(out, `"created": 1`) || strings.Contains(out, `"updated": 1`) {
		t.Fatalf("re-import changed something:\n%s", out)
	}
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}
