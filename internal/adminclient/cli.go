package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/tollgate/tollgate/internal/config"
)

// UsageError is a command line that makes no sense; the caller prints
// the usage and exits 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usage lists the admin commands.
const Usage = `enforcer admin [--server URL] [--token T] [--output table|json] [--json] <resource> <verb> ...

  apis list [--state S] | get ID | create --file F | update ID --file F | delete ID
  apis publish|deprecate|retire|block|unblock ID
  apis import --file OPENAPI [--id ID] [--publish]      OpenAPI 3.0, 3.1 or Swagger 2.0
  apis openapi ID                                       the stored OpenAPI document
  apps list [--owner O] | get ID | create --name N [--id ID] [--owner O] [--tier T]
  apps update ID --file F | delete ID
  subscriptions list [--app A] [--api B] [--state S] | create --app A --api B [--tier T]
  subscriptions approve|block|unblock|hold|delete APP/API
  keys list APP | create APP [--name N] [--expires RFC3339] | get APP KEY
  keys regenerate APP KEY [--grace 24h] | revoke APP KEY | delete APP KEY
  policies list | get NAME | create --file F | update NAME --file F | delete NAME
  issuers list | get NAME | create --file F | update NAME --file F | delete NAME
  audit [--kind K] [--object ID] [--actor A]
  usage [--application A] [--api B] [--since 1h] [--step 1m|5m|15m|1h|1d]
                             requests, errors, throttled, mean latency (developers: --application)
  whoami
  export [--file F]          every resource in the YAML format of a config file
  import [--file F]          apply such a file (created or replaced, nothing deleted)

--file - reads standard input. --file takes YAML or JSON.
--server and --token default to $TOLLGATE_SERVER and $TOLLGATE_TOKEN.
`

// IO is where a command reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// cli is one invocation.
type cli struct {
	ctx    context.Context
	c      *Client
	json   bool
	io     IO
	header http.Header
}

// Run executes `enforcer admin ARGS`.
func Run(ctx context.Context, args []string, o IO) error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	server := fs.String("server", o.Getenv("TOLLGATE_SERVER"), "the control plane's API, http(s)://host:port")
	token := fs.String("token", o.Getenv("TOLLGATE_TOKEN"), "bearer token")
	output := fs.String("output", "table", "table or json")
	fs.StringVar(output, "o", "table", "table or json")
	asJSON := fs.Bool("json", false, "the same as --output json")
	if err := fs.Parse(args); err != nil {
		return UsageError{err.Error()}
	}
	if *asJSON {
		*output = "json"
	}
	if *output != "table" && *output != "json" {
		return UsageError{"--output: table or json"}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return UsageError{"admin: name a resource"}
	}
	if *server == "" {
		return UsageError{"admin: --server or TOLLGATE_SERVER is required"}
	}
	if u, err := url.Parse(*server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return UsageError{"admin: --server wants http(s)://host:port"}
	}
	x := &cli{ctx: ctx, c: &Client{Server: *server, Token: *token}, json: *output == "json", io: o}
	resource, verb, args := rest[0], "", rest[1:]
	if len(args) > 0 {
		verb, args = args[0], args[1:]
	}
	switch resource {
	case "apis":
		return x.apis(verb, args)
	case "apps", "applications":
		return x.apps(verb, args)
	case "subscriptions", "subs":
		return x.subscriptions(verb, args)
	case "keys":
		return x.keys(verb, args)
	case "policies":
		return x.plain("/api/v1/policies", verb, args, []string{"name", "limits"})
	case "issuers":
		return x.plain("/api/v1/issuers", verb, args, []string{"name", "issuer", "jwksUri", "jwksFile"})
	case "audit":
		return x.audit(append([]string{verb}, args...))
	case "usage":
		return x.usage(append([]string{verb}, args...))
	case "whoami":
		return x.show(x.get("/api/v1/me"))
	case "export":
		return x.export(append([]string{verb}, args...))
	case "import":
		return x.importResources(append([]string{verb}, args...))
	}
	return UsageError{fmt.Sprintf("admin: unknown resource %q", resource)}
}

// flags parses flags anywhere among positional arguments and checks the
// number of positional ones.
func flags(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, UsageError{fs.Name() + ": " + err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] != "" {
			pos = append(pos, args[0])
		}
		args = args[1:]
	}
	if len(pos) != positional {
		return nil, UsageError{fmt.Sprintf("%s: want %d argument(s), got %d", fs.Name(), positional, len(pos))}
	}
	return pos, nil
}

func newFlags(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ContinueOnError) }

type answer struct {
	data []byte
	err  error
}

func (x *cli) get(path string) answer {
	data, _, err := x.c.Do(x.ctx, http.MethodGet, path, nil, nil)
	return answer{data, err}
}

func (x *cli) send(method, path string, body any) answer {
	data, _, err := x.c.Do(x.ctx, method, path, body, x.header)
	return answer{data, err}
}

// readFile reads --file (YAML or JSON; - for standard input) as JSON.
func (x *cli) readFile(path string) ([]byte, error) {
	if path == "" {
		return nil, UsageError{"--file is required"}
	}
	data, err := x.readRaw(path)
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return j, nil
}

// maxFileBytes bounds what a command reads from a file or standard input.
const maxFileBytes = 256 << 20

// readRaw reads a file, or standard input for "-".
func (x *cli) readRaw(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(x.io.Stdin, maxFileBytes))
	}
	return os.ReadFile(path)
}

// createOrUpdate is the create (POST base) and update ID (PUT base/ID)
// verbs of a kind, with the body from --file.
func (x *cli) createOrUpdate(fs *flag.FlagSet, verb string, args []string, file *string, base string) error {
	n := 0
	if verb == "update" {
		n = 1
	}
	pos, err := flags(fs, args, n)
	if err != nil {
		return err
	}
	body, err := x.readFile(*file)
	if err != nil {
		return err
	}
	if verb == "create" {
		return x.show(x.send(http.MethodPost, base, body))
	}
	return x.show(x.send(http.MethodPut, base+"/"+esc(pos[0]), body))
}

// show prints one object: JSON, or its fields one per line.
func (x *cli) show(a answer) error {
	if a.err != nil {
		return a.err
	}
	if len(a.data) == 0 {
		return nil
	}
	if x.json {
		return x.printJSON(a.data)
	}
	var o object
	if err := json.Unmarshal(a.data, &o); err != nil {
		return x.printJSON(a.data)
	}
	if secret, ok := o["key"].(string); ok {
		fmt.Fprintf(x.io.Stdout, "key: %s\n\nThe key is shown once and stored only as its hash: keep it now.\n\n", secret)
		delete(o, "key")
	}
	names := make([]string, 0, len(o))
	for k := range o {
		names = append(names, k)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(x.io.Stdout, 0, 4, 2, ' ', 0)
	for _, k := range names {
		fmt.Fprintf(tw, "%s:\t%s\n", k, cell(o[k]))
	}
	return tw.Flush()
}

func (x *cli) printJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		_, err = x.io.Stdout.Write(data)
		return err
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	_, err := fmt.Fprintf(x.io.Stdout, "%s\n", b)
	return err
}

// list prints every item of a list route as a table of columns.
func (x *cli) list(path string, columns []string) error {
	items, err := x.c.All(x.ctx, path)
	if err != nil {
		return err
	}
	if x.json {
		b, _ := json.MarshalIndent(map[string]any{"items": items, "total": len(items)}, "", "  ")
		_, err := fmt.Fprintf(x.io.Stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(x.io.Stdout, 0, 4, 2, ' ', 0)
	head := make([]string, len(columns))
	for i, c := range columns {
		head[i] = strings.ToUpper(c)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, it := range items {
		row := make([]string, len(columns))
		for i, c := range columns {
			row[i] = cell(it[c])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// cell renders a value in one line.
func cell(v any) string {
	switch t := v.(type) {
	case nil:
		return "-"
	case string:
		return t
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = cell(e)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		b, _ := json.Marshal(t)
		return string(b)
	}
	return fmt.Sprint(v)
}

func query(pairs ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			q.Set(pairs[i], pairs[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func esc(s string) string { return url.PathEscape(s) }

func (x *cli) apis(verb string, args []string) error {
	fs := newFlags("apis " + verb)
	file := fs.String("file", "", "")
	state := fs.String("state", "", "")
	id := fs.String("id", "", "")
	publish := fs.Bool("publish", false, "")
	states := map[string]string{"publish": "published", "deprecate": "deprecated", "retire": "retired", "block": "blocked", "unblock": "published"}
	switch verb {
	case "list":
		if _, err := flags(fs, args, 0); err != nil {
			return err
		}
		return x.list("/api/v1/apis"+query("state", *state), []string{"id", "name", "version", "basePath", "state"})
	case "get", "delete", "openapi":
		pos, err := flags(fs, args, 1)
		if err != nil {
			return err
		}
		switch verb {
		case "get":
			return x.show(x.get("/api/v1/apis/" + esc(pos[0])))
		case "delete":
			return x.show(x.send(http.MethodDelete, "/api/v1/apis/"+esc(pos[0]), nil))
		}
		a := x.get("/api/v1/apis/" + esc(pos[0]) + "/openapi")
		if a.err != nil {
			return a.err
		}
		_, err = x.io.Stdout.Write(a.data)
		return err
	case "create", "update":
		return x.createOrUpdate(fs, verb, args, file, "/api/v1/apis")
	case "import":
		if _, err := flags(fs, args, 0); err != nil {
			return err
		}
		if *file == "" {
			return UsageError{"apis import: --file is required"}
		}
		doc, err := x.readRaw(*file)
		if err != nil {
			return err
		}
		path := "/api/v1/apis/import" + query("id", *id, "publish", map[bool]string{true: "true"}[*publish])
		ct := "application/yaml"
		if t := bytes.TrimSpace(doc); len(t) > 0 && t[0] == '{' {
			ct = "application/json"
		}
		x.header = http.Header{"Content-Type": {ct}}
		a := x.send(http.MethodPost, path, doc)
		if a.err != nil || x.json {
			return x.show(a)
		}
		return x.importSummary(a.data)
	}
	if target, ok := states[verb]; ok {
		pos, err := flags(fs, args, 1)
		if err != nil {
			return err
		}
		return x.show(x.send(http.MethodPatch, "/api/v1/apis/"+esc(pos[0]), map[string]string{"state": target}))
	}
	return UsageError{fmt.Sprintf("apis: unknown verb %q", verb)}
}

func (x *cli) apps(verb string, args []string) error {
	fs := newFlags("apps " + verb)
	owner := fs.String("owner", "", "")
	name := fs.String("name", "", "")
	id := fs.String("id", "", "")
	tier := fs.String("tier", "", "")
	file := fs.String("file", "", "")
	switch verb {
	case "list":
		if _, err := flags(fs, args, 0); err != nil {
			return err
		}
		return x.list("/api/v1/applications"+query("owner", *owner), []string{"id", "name", "owner", "tier"})
	case "get", "delete":
		pos, err := flags(fs, args, 1)
		if err != nil {
			return err
		}
		if verb == "get" {
			return x.show(x.get("/api/v1/applications/" + esc(pos[0])))
		}
		return x.show(x.send(http.MethodDelete, "/api/v1/applications/"+esc(pos[0]), nil))
	case "create":
		if _, err := flags(fs, args, 0); err != nil {
			return err
		}
		body := map[string]any{}
		for k, v := range map[string]string{"name": *name, "id": *id, "owner": *owner, "tier": *tier} {
			if v != "" {
				body[k] = v
			}
		}
		return x.show(x.send(http.MethodPost, "/api/v1/applications", body))
	case "update":
		pos, err := flags(fs, args, 1)
		if err != nil {
			return err
		}
		body, err := x.readFile(*file)
		if err != nil {
			return err
		}
		return x.show(x.send(http.MethodPut, "/api/v1/applications/"+esc(pos[0]), body))
	}
	return UsageError{fmt.Sprintf("apps: unknown verb %q", verb)}
}

// subscriptionPath turns APP/API into the subscription's route.
func subscriptionPath(id string) (string, error) {
	app, api, ok := strings.Cut(id, "/")
	if !ok || app == "" || api == "" || strings.Contains(api, "/") {
		return "", UsageError{"a subscription is named APP/API"}
	}
	return "/api/v1/subscriptions/" + esc(app) + "/" + esc(api), nil
}

func (x *cli) subscriptions(verb string, args []string) error {
	fs := newFlags("subscriptions " + verb)
	app := fs.String("app", "", "")
	api := fs.String("api", "", "")
	state := fs.String("state", "", "")
	tier := fs.String("tier", "", "")
	switch verb {
	case "list":
		if _, err := flags(fs, args, 0); err != nil {
			return err
		}
		return x.list("/api/v1/subscriptions"+query("application", *app, "api", *api, "state", *state), []string{"id", "state", "tier"})
	case "create":
		if _, err := flags(fs, args, 0); err != nil {
			return err
		}
		if *app == "" || *api == "" {
			return UsageError{"subscriptions create: --app and --api are required"}
		}
		body := map[string]string{"application": *app, "api": *api}
		if *tier != "" {
			body["tier"] = *tier
		}
		return x.show(x.send(http.MethodPost, "/api/v1/subscriptions", body))
	case "get", "approve", "block", "unblock", "hold", "delete":
		pos, err := flags(fs, args, 1)
		if err != nil {
			return err
		}
		path, err := subscriptionPath(pos[0])
		if err != nil {
			return err
		}
		switch verb {
		case "get":
			return x.show(x.get(path))
		case "approve":
			return x.show(x.send(http.MethodPost, path+"/approve", nil))
		case "delete":
			return x.show(x.send(http.MethodDelete, path, nil))
		}
		target := map[string]string{"block": "blocked", "unblock": "active", "hold": "onHold"}[verb]
		return x.show(x.send(http.MethodPatch, path, map[string]string{"state": target}))
	}
	return UsageError{fmt.Sprintf("subscriptions: unknown verb %q", verb)}
}

func (x *cli) keys(verb string, args []string) error {
	fs := newFlags("keys " + verb)
	name := fs.String("name", "", "")
	expires := fs.String("expires", "", "")
	grace := fs.String("grace", "", "")
	switch verb {
	case "list":
		pos, err := flags(fs, args, 1)
		if err != nil {
			return err
		}
		return x.list("/api/v1/applications/"+esc(pos[0])+"/keys", []string{"id", "name", "prefix", "state", "createdAt", "expiresAt"})
	case "create":
		pos, err := flags(fs, args, 1)
		if err != nil {
			return err
		}
		body := map[string]string{}
		if *name != "" {
			body["name"] = *name
		}
		if *expires != "" {
			body["expiresAt"] = *expires
		}
		return x.show(x.send(http.MethodPost, "/api/v1/applications/"+esc(pos[0])+"/keys", body))
	case "get", "regenerate", "revoke", "delete":
		pos, err := flags(fs, args, 2)
		if err != nil {
			return err
		}
		path := "/api/v1/applications/" + esc(pos[0]) + "/keys/" + esc(pos[1])
		switch verb {
		case "get":
			return x.show(x.get(path))
		case "revoke":
			return x.show(x.send(http.MethodPost, path+"/revoke", nil))
		case "delete":
			return x.show(x.send(http.MethodDelete, path, nil))
		}
		var body any
		if *grace != "" {
			body = map[string]string{"grace": *grace}
		}
		return x.show(x.send(http.MethodPost, path+"/regenerate", body))
	}
	return UsageError{fmt.Sprintf("keys: unknown verb %q", verb)}
}

// plain handles the kinds that are their message: policies, issuers.
func (x *cli) plain(base, verb string, args []string, columns []string) error {
	fs := newFlags(strings.TrimPrefix(base, "/api/v1/") + " " + verb)
	file := fs.String("file", "", "")
	switch verb {
	case "list":
		if _, err := flags(fs, args, 0); err != nil {
			return err
		}
		return x.list(base, columns)
	case "get", "delete":
		pos, err := flags(fs, args, 1)
		if err != nil {
			return err
		}
		if verb == "get" {
			return x.show(x.get(base + "/" + esc(pos[0])))
		}
		return x.show(x.send(http.MethodDelete, base+"/"+esc(pos[0]), nil))
	case "create", "update":
		return x.createOrUpdate(fs, verb, args, file, base)
	}
	return UsageError{fmt.Sprintf("%s: unknown verb %q", strings.TrimPrefix(base, "/api/v1/"), verb)}
}

func (x *cli) audit(args []string) error {
	fs := newFlags("audit")
	kind := fs.String("kind", "", "")
	object := fs.String("object", "", "")
	actor := fs.String("actor", "", "")
	args = slices.DeleteFunc(args, func(s string) bool { return s == "" })
	if _, err := flags(fs, args, 0); err != nil {
		return err
	}
	return x.list("/api/v1/audit"+query("kind", *kind, "object", *object, "actor", *actor), []string{"seq", "at", "actor", "role", "action", "kind", "object"})
}

func (x *cli) export(args []string) error {
	fs := newFlags("export")
	file := fs.String("file", "", "")
	args = slices.DeleteFunc(args, func(s string) bool { return s == "" })
	if _, err := flags(fs, args, 0); err != nil {
		return err
	}
	a := x.get("/api/v1/export")
	if a.err != nil {
		return a.err
	}
	out, err := yaml.JSONToYAML(a.data)
	if err != nil {
		return err
	}
	out = append([]byte("# Tollgate resources exported from the control plane's store.\n"), out...)
	if *file == "" || *file == "-" {
		_, err = x.io.Stdout.Write(out)
		return err
	}
	return os.WriteFile(*file, out, 0o600)
}

func (x *cli) importResources(args []string) error {
	fs := newFlags("import")
	file := fs.String("file", "-", "")
	args = slices.DeleteFunc(args, func(s string) bool { return s == "" })
	if _, err := flags(fs, args, 0); err != nil {
		return err
	}
	data, err := x.readRaw(*file)
	if err != nil {
		return err
	}
	// The file is read as an enforcer reads its config, so what imports
	// is what a file source would serve.
	r, err := config.ParseResources(data)
	if err != nil {
		return err
	}
	body, err := protojson.Marshal(r)
	if err != nil {
		return err
	}
	return x.show(x.send(http.MethodPost, "/api/v1/import", body))
}

// importSummary prints what an OpenAPI import did, briefly.
func (x *cli) importSummary(data []byte) error {
	var r struct {
		API struct {
			ID         string `json:"id"`
			State      string `json:"state"`
			BasePath   string `json:"basePath"`
			Operations []any  `json:"operations"`
		} `json:"api"`
		SpecVersion string   `json:"specVersion"`
		Created     bool     `json:"created"`
		Changes     []string `json:"changes"`
		Warnings    []string `json:"warnings"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return x.printJSON(data)
	}
	verb := "updated"
	if r.Created {
		verb = "created"
	}
	fmt.Fprintf(x.io.Stdout, "%s API %s (%s, %s, %d operations) from OpenAPI %s\n", verb, r.API.ID, r.API.State, r.API.BasePath, len(r.API.Operations), r.SpecVersion)
	for _, c := range r.Changes {
		fmt.Fprintf(x.io.Stdout, "  changed: %s\n", c)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(x.io.Stdout, "  warning: %s\n", w)
	}
	return nil
}

// ExitCode is what a failed command exits with: 2 for usage, 1 otherwise.
func ExitCode(err error) int {
	var ue UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
